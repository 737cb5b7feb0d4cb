//! The `windivert` backend's bookkeeping, platform-neutral so it is tested on Linux:
//! - `SendBatch` packs packets back to back with one address each, the shape WinDivertSendEx
//!   takes (at most `BATCH_MAX` packets per call);
//! - `Pending` remembers the WinDivert address of every packet the engine may answer later
//!   (held first packets, punted DNS answers), keyed by the id the engine got in its handle.
//!
//! NFQUEUE keeps a queued packet in the kernel until its verdict; WinDivert hands the packet
//! over and forgets it, so a later "accept" must re-inject the bytes with the address they came
//! with (direction, interface). Ids are registered before the engine sees the packet, because a
//! verdict can come from another thread (a VAT entry added from JavaScript) as soon as the
//! engine has the packet; the entries of packets answered at once are dropped right after.

use super::windivert_abi::{Address, BATCH_MAX};
use std::collections::HashMap;

pub struct SendBatch {
    pub buf: Vec<u8>,
    pub addrs: Vec<Address>,
    max_bytes: usize,
}

impl SendBatch {
    pub fn new(max_bytes: usize) -> SendBatch {
        SendBatch { buf: Vec::with_capacity(max_bytes), addrs: Vec::with_capacity(BATCH_MAX), max_bytes }
    }
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
    pub fn len(&self) -> usize {
        self.addrs.len()
    }
    /// Whether `len` more bytes fit in this batch (one packet always fits an empty batch).
    pub fn fits(&self, len: usize) -> bool {
        self.addrs.is_empty() || (self.addrs.len() < BATCH_MAX && self.buf.len() + len <= self.max_bytes)
    }
    /// Adds a packet with the address it goes out with (checksums vouched for: see `for_send`).
    /// The caller sends and clears the batch first when `fits` says no.
    pub fn push(&mut self, pkt: &[u8], addr: &Address) {
        self.buf.extend_from_slice(pkt);
        self.addrs.push(addr.for_send());
    }
    pub fn clear(&mut self) {
        self.buf.clear();
        self.addrs.clear();
    }
}

/// Addresses of packets the engine still holds, by (handle index, id).
pub struct Pending {
    map: HashMap<(u16, u32), Address>,
    next: u32,
    cap: usize,
    pub overflow: u64,
}

impl Pending {
    pub fn new(cap: usize) -> Pending {
        Pending { map: HashMap::new(), next: 1, cap, overflow: 0 }
    }
    /// A fresh id for a packet received on handle `q` (never 0; wraps after 2^32).
    pub fn register(&mut self, q: u16, addr: Address) -> u32 {
        let id = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        if self.map.len() >= self.cap {
            // More packets waiting than the engine can hold: the engine drops beyond its own
            // limits, so this only happens if verdicts were lost. Keep the newest.
            self.overflow += 1;
            self.map.clear();
        }
        self.map.insert((q, id), addr);
        id
    }
    /// The address of a packet being answered now (and forgets it).
    pub fn take(&mut self, q: u16, id: u32) -> Option<Address> {
        self.map.remove(&(q, id))
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(if_idx: u32, out: bool) -> Address {
        let mut a = Address::default();
        a.set_interface(if_idx, 0);
        a.set_outbound(out);
        a
    }

    #[test]
    fn a_batch_is_packets_back_to_back_with_one_address_each() {
        let mut b = SendBatch::new(4000);
        assert!(b.is_empty() && b.fits(100_000), "an empty batch takes any one packet");
        b.push(&[1u8; 1500], &addr(3, true));
        b.push(&[2u8; 40], &addr(4, false));
        assert_eq!((b.len(), b.buf.len()), (2, 1540));
        assert_eq!(&b.buf[1499..1501], &[1, 2]);
        assert!(b.addrs[0].outbound() && !b.addrs[1].outbound());
        assert_eq!(b.addrs[1].if_idx(), 4);
        assert!(b.addrs.iter().all(|a| a.ip_checksum() && a.tcp_checksum() && a.udp_checksum()));
        assert!(b.fits(2460) && !b.fits(2461));
        b.clear();
        assert!(b.is_empty() && b.buf.is_empty());
    }

    #[test]
    fn a_batch_holds_at_most_batch_max_packets() {
        let mut b = SendBatch::new(1 << 20);
        for _ in 0..BATCH_MAX {
            assert!(b.fits(20));
            b.push(&[0u8; 20], &Address::default());
        }
        assert!(!b.fits(20));
    }

    #[test]
    fn pending_addresses_come_back_once_by_handle_and_id() {
        let mut p = Pending::new(16);
        let a = p.register(0, addr(7, true));
        let b = p.register(1, addr(8, false));
        assert_ne!(a, b);
        assert_eq!(p.len(), 2);
        assert_eq!(p.take(1, a), None, "ids are per handle");
        assert_eq!(p.take(0, a).unwrap().if_idx(), 7);
        assert_eq!(p.take(0, a), None, "taken once");
        assert_eq!(p.take(1, b).unwrap().if_idx(), 8);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn ids_skip_zero_when_they_wrap() {
        let mut p = Pending::new(16);
        p.next = u32::MAX;
        assert_eq!(p.register(0, Address::default()), u32::MAX);
        assert_eq!(p.register(0, Address::default()), 1);
    }

    #[test]
    fn an_overfull_table_is_reset_and_counted() {
        let mut p = Pending::new(4);
        for _ in 0..4 {
            p.register(0, Address::default());
        }
        let last = p.register(0, addr(9, true));
        assert_eq!((p.len(), p.overflow), (1, 1));
        assert_eq!(p.take(0, last).unwrap().if_idx(), 9);
    }
}
