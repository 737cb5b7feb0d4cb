//! Where the flows live: a slab of fixed-size chunks, each slot a flow behind its own lock, found by
//! a 32-bit slot number (the table's indexes hold those). One allocation per chunk instead of one
//! `Arc<Mutex<Flow>>` per flow: no reference count, lock word and allocator header per flow, and
//! flows are not interleaved in the C heap with the short-lived buffers around them.
//!
//! Safety of a flow's lifetime without `unsafe`: a crypto job (and an ICMP error's reference) holds
//! a [`FlowRef`] = its chunk (an `Arc`, so the memory stays while anyone holds it), the slot and the
//! slot's *generation* when it was looked up. Every slot has a generation, odd while it holds a
//! flow; the engine (under its lock, and the slot's) bumps it when a flow goes in and again when it
//! goes out. `FlowRef::lock` takes the slot's lock and gives the flow only if the generation still
//! matches: a flow removed while a queue thread held a reference to it is gone for that thread (its
//! packet is refused, never applied to the flow that took the slot after it). A removed flow is dropped in place, under its slot's lock, so its keys
//! are wiped where they lay (pccom::DirKeys). Chunks are kept for reuse (a removed flow's slot is
//! the next one given out), never freed while the engine lives.

use super::flow::Flow;
use crate::lock::lock;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Slots per chunk: a chunk is about 96 KB (flows of 368 bytes), what an engine with a few flows
/// (an agent's) costs at least.
const CHUNK: usize = 256;

/// A flow's place in the slab. 32 bits: the indexes' entries are half the size of a usize's.
pub type Slot = u32;

/// A chunk of slots: each slot's flow behind its lock, and its generation (odd while it holds a
/// flow). The engine writes a generation only while it holds the slot's lock (and the engine
/// lock); a queue thread reads it under the slot's lock, so the lock orders them. An atomic apart
/// from the lock so that a slot costs its flow plus 12 bytes (lock word and generation), not 16.
struct Chunk {
    cells: Box<[Mutex<Option<Flow>>]>,
    gens: Box<[AtomicU32]>,
}

/// A reference to the flow in one slot at one generation: it outlives the flow safely (see the
/// module comment).
#[derive(Clone)]
pub struct FlowRef {
    chunk: Arc<Chunk>,
    i: u32,
    gen: u32,
}

impl FlowRef {
    /// The flow, locked, if it is still the one this reference was made for.
    pub fn lock(&self) -> Option<FlowGuard<'_>> {
        let c = lock(&self.chunk.cells[self.i as usize]);
        if self.chunk.gens[self.i as usize].load(Ordering::Relaxed) == self.gen && c.is_some() {
            Some(FlowGuard(c))
        } else {
            None
        }
    }
}

/// A locked flow (made only by `FlowRef::lock`, which checked that the slot holds one).
pub struct FlowGuard<'a>(MutexGuard<'a, Option<Flow>>);

impl Deref for FlowGuard<'_> {
    type Target = Flow;
    fn deref(&self) -> &Flow {
        self.0.as_ref().expect("a FlowGuard's slot holds a flow")
    }
}

impl DerefMut for FlowGuard<'_> {
    fn deref_mut(&mut self) -> &mut Flow {
        self.0.as_mut().expect("a FlowGuard's slot holds a flow")
    }
}

#[derive(Default)]
pub struct Slab {
    chunks: Vec<Arc<Chunk>>,
    /// Slots given out so far (taken or free).
    len: usize,
    free: Vec<Slot>,
}

fn chunk() -> Arc<Chunk> {
    Arc::new(Chunk { cells: (0..CHUNK).map(|_| Mutex::new(None)).collect(), gens: (0..CHUNK).map(|_| AtomicU32::new(0)).collect() })
}

impl Slab {
    /// The number of slots (taken or free), for walks over every flow.
    pub fn slots(&self) -> usize {
        self.len
    }

    fn at(&self, s: Slot) -> Option<(&Arc<Chunk>, usize)> {
        if (s as usize) < self.len {
            Some((&self.chunks[s as usize / CHUNK], s as usize % CHUNK))
        } else {
            None
        }
    }

    /// The generation of slot `s` if it holds a flow (odd).
    fn taken(&self, s: Slot) -> Option<(&Arc<Chunk>, usize, u32)> {
        let (c, i) = self.at(s)?;
        let gen = c.gens[i].load(Ordering::Relaxed);
        if gen % 2 == 1 {
            Some((c, i, gen))
        } else {
            None
        }
    }

    pub fn insert(&mut self, f: Flow) -> Slot {
        let s = match self.free.pop() {
            Some(s) => s,
            None => {
                if self.len == self.chunks.len() * CHUNK {
                    self.chunks.push(chunk());
                }
                self.len += 1;
                (self.len - 1) as Slot
            }
        };
        let (c, i) = self.at(s).expect("a slot just given out");
        let mut cell = lock(&c.cells[i]);
        c.gens[i].store(c.gens[i].load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        *cell = Some(f);
        s
    }

    /// Drops the flow in slot `s` in place; false if there was none.
    pub fn remove(&mut self, s: Slot) -> bool {
        let (c, i, gen) = match self.taken(s) {
            Some(t) => t,
            None => return false,
        };
        let mut cell = lock(&c.cells[i]);
        c.gens[i].store(gen.wrapping_add(1), Ordering::Relaxed);
        *cell = None;
        drop(cell);
        self.free.push(s);
        true
    }

    /// A reference to the flow in slot `s`, if it holds one.
    pub fn get(&self, s: Slot) -> Option<FlowRef> {
        let (c, i, gen) = self.taken(s)?;
        Some(FlowRef { chunk: c.clone(), i: i as u32, gen })
    }

    /// The flow in slot `s`, locked, if it holds one.
    pub fn with<R>(&self, s: Slot, f: impl FnOnce(&mut Flow) -> R) -> Option<R> {
        let (c, i, _) = self.taken(s)?;
        let mut cell = lock(&c.cells[i]);
        cell.as_mut().map(f)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FlowSpec, Role};
    use super::*;
    use crate::pccom::DirKeys;
    use crate::pkt::PROTO_TCP;

    fn flow(id: u32) -> Flow {
        let k = DirKeys { enc: [1; 16], mac: [2; 32], salt: [3; 8] };
        let spec = FlowSpec { id, proto: PROTO_TCP, compat: false, tx: k.clone(), rx: k, pen: 0, s: 0, vin: 0, d: 0, ggr: 0, t: id as u16, pin: 1, ports: vec![] };
        Flow::new(&spec, Role::Gateway, 0).unwrap()
    }

    #[test]
    fn a_reference_to_a_removed_flow_never_reaches_the_flow_that_took_its_slot() {
        let mut s = Slab::default();
        let a = s.insert(flow(1));
        let ra = s.get(a).unwrap();
        assert_eq!(ra.lock().unwrap().id, 1);
        assert!(s.remove(a));
        assert!(ra.lock().is_none(), "removed");
        assert!(s.get(a).is_none() && !s.remove(a));
        let b = s.insert(flow(2));
        assert_eq!(b, a, "the slot is reused");
        assert!(ra.lock().is_none(), "the old reference does not see the new flow");
        assert_eq!(s.get(b).unwrap().lock().unwrap().id, 2);
        assert_eq!(s.with(b, |f| f.id), Some(2));
    }

    #[test]
    fn slots_span_chunks_and_references_outlive_the_slab() {
        let mut s = Slab::default();
        let slots: Vec<Slot> = (0..CHUNK as u32 * 2 + 3).map(|i| s.insert(flow(i))).collect();
        assert_eq!(s.slots(), CHUNK * 2 + 3);
        let last = s.get(*slots.last().unwrap()).unwrap();
        for (i, &sl) in slots.iter().enumerate() {
            assert_eq!(s.with(sl, |f| f.id), Some(i as u32));
        }
        drop(s);
        // The chunk stays while a reference holds it (a queue thread's job outliving the engine's
        // table): its flow is still there, locked as before.
        assert_eq!(last.lock().unwrap().id, CHUNK as u32 * 2 + 2);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_slot_costs_a_flow_and_12_bytes() {
        // The memory budget per flow (docs/performance.md): the lock word and the generation.
        assert_eq!(std::mem::size_of::<Mutex<Option<Flow>>>() + std::mem::size_of::<AtomicU32>(), std::mem::size_of::<Flow>() + 12);
        // 368 with rustup's compiler, 376 with Debian's rustc 1.63 (it lays the flow's enums out
        // less tightly).
        assert!(std::mem::size_of::<Flow>() <= 376, "{}", std::mem::size_of::<Flow>());
    }
}
