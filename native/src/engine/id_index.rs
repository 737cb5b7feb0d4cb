//! The flows by id (TypeScript's number for a flow): an open-addressing table of slot numbers, 4
//! bytes a bucket, linear probing, at most 7/8 full, each slot's id kept in an array by slot. About
//! 12 bytes per flow where a `HashMap<u32, Slot>` took 19 (9 bytes a bucket, at the same load). Only
//! the N-API calls look flows up by id (remove, info, probe, snapshot, an ALG verdict); packets
//! find theirs by addresses and ports (table.rs).

use super::slab::Slot;

const EMPTY: Slot = Slot::MAX;

#[derive(Default)]
pub struct IdIndex {
    /// Slot numbers (EMPTY: none), a power of two of them, or none before the first insert.
    buckets: Vec<Slot>,
    /// The id of the flow in each slot (meaningful for the slots in `buckets` only).
    ids: Vec<u32>,
    len: usize,
}

impl IdIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The bucket an id hashes to (Fibonacci hashing: ids are often sequential).
    fn home(&self, id: u32) -> usize {
        let bits = self.buckets.len().trailing_zeros();
        ((id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    /// The bucket that holds `id`.
    fn find(&self, id: u32) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let mask = self.buckets.len() - 1;
        let mut i = self.home(id);
        loop {
            match self.buckets[i] {
                EMPTY => return None,
                s if self.ids[s as usize] == id => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    pub fn get(&self, id: u32) -> Option<Slot> {
        self.find(id).map(|i| self.buckets[i])
    }

    pub fn contains(&self, id: u32) -> bool {
        self.find(id).is_some()
    }

    /// Adds `id` in `slot` (the caller checked that `id` is not there).
    pub fn insert(&mut self, id: u32, slot: Slot) {
        if (self.len + 1) * 8 > self.buckets.len() * 7 {
            self.grow();
        }
        if self.ids.len() <= slot as usize {
            self.ids.resize(slot as usize + 1, 0);
        }
        self.ids[slot as usize] = id;
        self.place(slot);
        self.len += 1;
    }

    fn place(&mut self, slot: Slot) {
        let mask = self.buckets.len() - 1;
        let mut i = self.home(self.ids[slot as usize]);
        while self.buckets[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.buckets[i] = slot;
    }

    fn grow(&mut self) {
        let n = std::cmp::max(16, self.buckets.len() * 2);
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; n]);
        for s in old.into_iter().filter(|&s| s != EMPTY) {
            self.place(s);
        }
    }

    /// Removes `id`; returns its slot.
    pub fn remove(&mut self, id: u32) -> Option<Slot> {
        let mut i = self.find(id)?;
        let slot = self.buckets[i];
        let mask = self.buckets.len() - 1;
        // Backward-shift deletion: move up every later entry of the run that may sit in the hole
        // (its home is not cyclically within (hole, its bucket]), so no tombstones are needed.
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.buckets[j];
            if s == EMPTY {
                break;
            }
            let k = self.home(self.ids[s as usize]);
            let stays = if i <= j { i < k && k <= j } else { i < k || k <= j };
            if !stays {
                self.buckets[i] = s;
                i = j;
            }
        }
        self.buckets[i] = EMPTY;
        self.len -= 1;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Against a HashMap, under a seeded mix of inserts and removes (slots reused as the slab does),
    /// with ids that collide in their home bucket.
    #[test]
    fn finds_what_a_hash_map_finds_through_inserts_and_removes() {
        let seed = 0x5eed_1234u32;
        println!("seed {seed:#x}");
        let mut x = seed;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let (mut ix, mut model) = (IdIndex::default(), HashMap::new());
        let mut free: Vec<Slot> = Vec::new();
        let mut next: Slot = 0;
        for _ in 0..200_000 {
            let id = rnd() % 5000 * if rnd() % 2 == 0 { 1 } else { 1 << 19 };
            if model.contains_key(&id) {
                let s = model.remove(&id).unwrap();
                assert_eq!(ix.remove(id), Some(s));
                free.push(s);
            } else {
                let s = free.pop().unwrap_or_else(|| {
                    next += 1;
                    next - 1
                });
                assert!(!ix.contains(id));
                ix.insert(id, s);
                model.insert(id, s);
            }
            assert_eq!(ix.len(), model.len());
        }
        for id in 0..5000u32 {
            for id in [id, id << 19] {
                assert_eq!(ix.get(id), model.get(&id).copied(), "id {id}");
            }
        }
        assert_eq!(ix.remove(7 << 20), model.remove(&(7 << 20)));
    }
}
