//! The agent's armed pool (lever 5 of docs/performance.md): ports the gateway reserved ahead of
//! time, with their keys, handed to the engine per (proto, VIN) as soon as they are reserved, so
//! that a new flow's first packet (a TCP initial SYN, a UDP datagram) to a known VIN takes one and
//! leaves at once: the engine makes the VAT entry itself, protects the packet, and tells
//! TypeScript afterwards (event `pool-taken`), which records the flow as if it had installed it.
//!
//! What stays true:
//! - a port is used by one flow only: `take` and `withdraw` run under the engine lock, a port is
//!   in at most one pool, and a port taken is out of it; TypeScript withdraws a port before it
//!   uses one itself, and `withdraw` says whether it was still there;
//! - an empty pool (or a 5-tuple with packets already held, or a (VIN, port) excluded for an FTP
//!   alias) leaves the packet to `hold` (held.rs), handled by TypeScript as before;
//! - a port past its `until` is never taken (it is dropped from the pool when met);
//! - TypeScript hears of every flow the engine starts: with the event queue full, no port is taken.
//!
//! Flows the engine makes get ids from `FIRST_ID` up; TypeScript numbers its own from 1.

use super::flow::Flow;
use super::table::FlowSpec;
use super::{Engine, Event, Key5};
use crate::pccom::DirKeys;
use crate::pkt::{PROTO_TCP, PROTO_UDP};
use std::collections::{HashMap, HashSet, VecDeque};

/// The first id of a flow the engine makes from its pool.
pub const FIRST_ID: u32 = 0x8000_0000;

/// A pooled port as TypeScript hands it over.
#[derive(Clone)]
pub struct PoolPort {
    pub proto: u8,
    pub vin: u32,
    pub ggr: u32,
    pub t: u16,
    /// The serial of its keys (reported back with `pool-taken`).
    pub serial: u32,
    pub compat: bool,
    /// EN -> GW (protect) and GW -> EN (verify).
    pub tx: DirKeys,
    pub rx: DirKeys,
    /// Engine time (ms) after which the port is not taken any more.
    pub until: u64,
}

#[derive(Default)]
pub(super) struct Pools {
    by_vin: HashMap<(u8, u32), VecDeque<PoolPort>>,
    /// (proto, t) -> VIN: where a port is pooled.
    vin_of: HashMap<(u8, u16), u32>,
    /// (VIN, d) the engine leaves to TypeScript (an FTP data connection takes its alias's port).
    excluded: HashSet<(u32, u16)>,
    next_id: u32,
}

impl Pools {
    pub fn len(&self) -> usize {
        self.vin_of.len()
    }

    fn remove(&mut self, proto: u8, t: u16) -> bool {
        let vin = match self.vin_of.remove(&(proto, t)) {
            Some(v) => v,
            None => return false,
        };
        if let Some(q) = self.by_vin.get_mut(&(proto, vin)) {
            q.retain(|p| p.t != t);
            if q.is_empty() {
                self.by_vin.remove(&(proto, vin));
            }
        }
        true
    }

    /// The oldest port of the pool for (proto, VIN) still valid at `now`; expired ones are dropped.
    fn pop(&mut self, proto: u8, vin: u32, now: u64) -> Option<PoolPort> {
        let q = self.by_vin.get_mut(&(proto, vin))?;
        let mut found = None;
        while let Some(p) = q.pop_front() {
            self.vin_of.remove(&(proto, p.t));
            if p.until > now {
                found = Some(p);
                break;
            }
        }
        if q.is_empty() {
            self.by_vin.remove(&(proto, vin));
        }
        found
    }

    fn id(&mut self) -> u32 {
        let id = FIRST_ID.wrapping_add(self.next_id);
        self.next_id = (self.next_id + 1) & 0x7fff_ffff;
        id
    }
}

impl Engine {
    /// Agent: pools `p` (or updates its `until` and keys if it is pooled already). Refused for a
    /// port pooled for another VIN. TypeScript never pools a port a flow carries.
    pub fn pool_add(&mut self, p: PoolPort) -> Result<(), String> {
        if p.proto != PROTO_TCP && p.proto != PROTO_UDP {
            return Err("proto must be tcp or udp".into());
        }
        if !self.cfg.in_vin_net(p.vin) {
            return Err("vin is outside the VIN range".into());
        }
        match self.pools.vin_of.get(&(p.proto, p.t)) {
            Some(&v) if v != p.vin => {
                return Err(format!("port {} is pooled for another VIN", p.t))
            }
            Some(_) => {
                if let Some(q) = self.pools.by_vin.get_mut(&(p.proto, p.vin)) {
                    if let Some(old) = q.iter_mut().find(|o| o.t == p.t) {
                        *old = p;
                    }
                }
                return Ok(());
            }
            None => {}
        }
        self.pools.vin_of.insert((p.proto, p.t), p.vin);
        self.pools
            .by_vin
            .entry((p.proto, p.vin))
            .or_insert_with(VecDeque::new)
            .push_back(p);
        Ok(())
    }

    /// Moves the `until` of port (proto, t) (its reservation was renewed): true if it is still
    /// pooled. False if a flow took it: it is not pooled again (`pool_add` would).
    pub fn pool_renew(&mut self, proto: u8, t: u16, until: u64) -> bool {
        let vin = match self.pools.vin_of.get(&(proto, t)) {
            Some(&v) => v,
            None => return false,
        };
        match self.pools.by_vin.get_mut(&(proto, vin)).and_then(|q| q.iter_mut().find(|p| p.t == t)) {
            Some(p) => {
                p.until = until;
                true
            }
            None => false,
        }
    }

    /// Takes port (proto, t) back from the pool: true if it was there (the caller may now use it
    /// or let it go), false if it was not (the engine took it for a flow: a `pool-taken` event
    /// says so - or it was never pooled).
    pub fn pool_withdraw(&mut self, proto: u8, t: u16) -> bool {
        self.pools.remove(proto, t)
    }

    /// Withdraws every pooled port (the session ended, logged in again, or the gateway reset):
    /// returns how many there were.
    pub fn pool_clear(&mut self) -> usize {
        let n = self.pools.len();
        self.pools.by_vin.clear();
        self.pools.vin_of.clear();
        n
    }

    /// Leaves connections to (VIN, d) to TypeScript (`on`), or gives them back to the pool.
    pub fn pool_exclude(&mut self, vin: u32, d: u16, on: bool) {
        if on {
            self.pools.excluded.insert((vin, d));
        } else {
            self.pools.excluded.remove(&(vin, d));
        }
    }

    /// Ports pooled now, over all VINs.
    pub fn pool_size(&self) -> usize {
        self.pools.len()
    }

    /// The first packet of a new flow `key` (`opens`: a TCP initial SYN or a UDP datagram) with
    /// no VAT entry: a VAT entry on a pooled port, if one is ready; the caller then protects the
    /// packet as any other. None leaves the packet to `hold`.
    pub(super) fn take_pooled(&mut self, key: Key5, opens: bool, now: u64) -> bool {
        let (proto, pen, s, vin, d) = key;
        // TypeScript must hear of every flow it did not make: with no room for the event, none.
        let full = self.events.len() >= self.cfg.max_events;
        if !opens || full || self.held.has(&key) || self.pools.excluded.contains(&(vin, d)) {
            return false;
        }
        let p = match self.pools.pop(proto, vin, now) {
            Some(p) => p,
            None => return false,
        };
        let id = self.pools.id();
        let spec = FlowSpec {
            id,
            proto,
            compat: p.compat,
            tx: p.tx,
            rx: p.rx,
            pen,
            s,
            vin,
            d,
            ggr: p.ggr,
            t: p.t,
            pin: 0,
            ports: Vec::new(),
        };
        let flow = match Flow::new(&spec, self.cfg.role, now) {
            Ok(f) => f,
            Err(_) => return false,
        };
        if self.insert_flow(flow, now).is_err() {
            return false;
        }
        self.stats.pool_taken += 1;
        self.event(Event::PoolTaken {
            id,
            proto,
            t: p.t,
            serial: p.serial,
            src: pen,
            sport: s,
            dst: vin,
            dport: d,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Config, Handle, Hook, Role, Verdict};
    use crate::pkt::{build, TCP_SYN};

    const VIN: u32 = 0x6440_0005; // 100.64.0.5
    const PEN: u32 = 0x0a00_0002;
    const GGR: u32 = 0xc000_0201;

    fn engine() -> Engine {
        let mut c = Config::new(Role::Agent);
        c.vin_net = 0x6440_0000;
        c.vin_prefix = 16;
        Engine::new(c)
    }

    fn keys(b: u8) -> DirKeys {
        DirKeys {
            enc: [b; 16],
            mac: [b; 32],
            salt: [b; 8],
        }
    }

    fn port(t: u16, until: u64) -> PoolPort {
        PoolPort {
            proto: PROTO_TCP,
            vin: VIN,
            ggr: GGR,
            t,
            serial: t as u32 + 7,
            compat: false,
            tx: keys(1),
            rx: keys(2),
            until,
        }
    }

    fn syn(s: u16) -> Vec<u8> {
        build::tcp(PEN, s, VIN, 80, 1000 + s as u32, 0, TCP_SYN, &[], &[])
    }

    fn taken(e: &Engine) -> Vec<(u32, u16, u16)> {
        e.events
            .iter()
            .filter_map(|e| match e {
                Event::PoolTaken { id, t, sport, .. } => Some((*id, *t, *sport)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_syn_takes_a_pooled_port_and_leaves_at_once() {
        let mut e = engine();
        e.pool_add(port(40000, 10_000)).unwrap();
        let mut p = syn(5000);
        let v = e.process(&mut p, Hook::Out, Handle::Memory, 10);
        assert_eq!(v, Verdict::Accept);
        assert_eq!(&p[16..20], &GGR.to_be_bytes(), "rewritten to GGR");
        assert_eq!(u16::from_be_bytes([p[22], p[23]]), 40000, "to port t");
        assert_eq!(taken(&e), vec![(FIRST_ID, 40000, 5000)]);
        assert_eq!(
            (
                e.stats.held,
                e.stats.pool_taken,
                e.pool_size(),
                e.flow_count()
            ),
            (0, 1, 0, 1)
        );
        assert!(e.flow(FIRST_ID).is_some());
    }

    #[test]
    fn two_syns_for_the_last_port_one_takes_it_the_other_is_held() {
        let mut e = engine();
        e.pool_add(port(40000, 10_000)).unwrap();
        let (mut a, mut b) = (syn(5000), syn(5001));
        assert_eq!(
            e.process(&mut a, Hook::Out, Handle::Memory, 10),
            Verdict::Accept
        );
        assert_eq!(
            e.process(&mut b, Hook::Out, Handle::Memory, 10),
            Verdict::Held
        );
        assert_eq!(taken(&e).len(), 1);
        assert_eq!((e.stats.held, e.stats.pool_taken), (1, 1));
    }

    #[test]
    fn withdraw_says_whether_the_engine_took_the_port() {
        let mut e = engine();
        e.pool_add(port(40000, 10_000)).unwrap();
        e.pool_add(port(40001, 10_000)).unwrap();
        let mut a = syn(5000);
        e.process(&mut a, Hook::Out, Handle::Memory, 10);
        assert!(!e.pool_withdraw(PROTO_TCP, 40000), "taken: not withdrawn");
        assert!(!e.pool_renew(PROTO_TCP, 40000, 20_000), "taken: not renewed (so not pooled again)");
        assert!(e.pool_renew(PROTO_TCP, 40001, 20_000));
        assert!(e.pool_withdraw(PROTO_TCP, 40001));
        assert!(!e.pool_withdraw(PROTO_TCP, 40001), "once only");
        let mut b = syn(5001);
        assert_eq!(
            e.process(&mut b, Hook::Out, Handle::Memory, 10),
            Verdict::Held,
            "withdrawn: never taken"
        );
    }

    #[test]
    fn expired_excluded_cleared_and_held_keys_are_left_to_typescript() {
        let mut e = engine();
        e.pool_add(port(40000, 5)).unwrap();
        let mut a = syn(5000);
        assert_eq!(
            e.process(&mut a, Hook::Out, Handle::Memory, 10),
            Verdict::Held,
            "expired port not taken"
        );
        assert_eq!(e.pool_size(), 0);
        e.pool_add(port(40001, 10_000)).unwrap();
        let mut again = syn(5000);
        assert_eq!(
            e.process(&mut again, Hook::Out, Handle::Memory, 11),
            Verdict::Held,
            "a held 5-tuple waits for TypeScript"
        );
        e.pool_exclude(VIN, 80, true);
        let mut b = syn(5001);
        assert_eq!(
            e.process(&mut b, Hook::Out, Handle::Memory, 12),
            Verdict::Held,
            "(VIN, d) excluded"
        );
        e.pool_exclude(VIN, 80, false);
        e.cfg.max_events = e.events.len();
        let mut full = syn(5003);
        assert_eq!(e.process(&mut full, Hook::Out, Handle::Memory, 12), Verdict::Held, "no room to report a take");
        assert_eq!(e.pool_clear(), 1);
        let mut c = syn(5002);
        assert_eq!(
            e.process(&mut c, Hook::Out, Handle::Memory, 13),
            Verdict::Held,
            "cleared"
        );
        assert!(taken(&e).is_empty());
    }

    #[test]
    fn only_an_initial_syn_takes_a_port_and_a_port_has_one_vin() {
        let mut e = engine();
        e.pool_add(port(40000, 10_000)).unwrap();
        let mut ack = build::tcp(PEN, 5000, VIN, 80, 1, 1, crate::pkt::TCP_ACK, &[], &[]);
        assert!(matches!(
            e.process(&mut ack, Hook::Out, Handle::Memory, 10),
            Verdict::Drop(_)
        ));
        assert_eq!(e.pool_size(), 1);
        let mut other = port(40000, 10_000);
        other.vin = VIN + 1;
        assert!(e.pool_add(other).is_err());
        let mut outside = port(40002, 10_000);
        outside.vin = 0x0a00_0009;
        assert!(e.pool_add(outside).is_err());
    }
}
