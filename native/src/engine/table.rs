//! The flow table: the flows (in the slab, slab.rs) and the indexes that find them in O(1) per packet. The agent's
//! VAT table is two indexes (by the outbound 5-tuple `(proto, PEN, s, VIN, d)` and by the inbound
//! `(proto, GGR, t, PEN, s)`); the gateway's translation table is one, by `(proto, t)` (a direct array). Each flow
//! holds its PIT (see flow.rs). TypeScript adds and removes flows through `Engine::add_flow` and
//! `Engine::remove_flow`.

use super::flow::{Binding, Close, End, Flow, FlowCounters, FlowState};
use super::id_index::IdIndex;
use super::slab::{FlowRef, Slab, Slot};
use super::{Engine, Hook, Key5, OutItem, Verdict};
use crate::pccom::DirKeys;
use crate::pkt::{PROTO_TCP, PROTO_UDP};
use std::collections::HashMap;

/// What TypeScript hands over for a flow (agent VAT entry, or gateway reservation).
#[derive(Clone)]
pub struct FlowSpec {
    pub id: u32,
    pub proto: u8,
    pub compat: bool,
    pub tx: DirKeys,
    pub rx: DirKeys,
    /// Agent: PEN, s, VIN, d, GGR, t.
    pub pen: u32,
    pub s: u16,
    pub vin: u32,
    pub d: u16,
    pub ggr: u32,
    pub t: u16,
    /// Gateway reservation: PIN and the allowed service ports (empty = any).
    pub pin: u32,
    pub ports: Vec<u16>,
}

/// A snapshot of one flow (see `Engine::flow`).
#[derive(Debug, Clone, Copy)]
pub struct FlowInfo {
    pub id: u32,
    pub proto: u8,
    pub state: FlowState,
    pub bound: bool,
    pub t: u16,
    pub d: u16,
    /// Gateway: where EN's home router maps it, once bound.
    pub binding: Option<Binding>,
    pub c: FlowCounters,
    /// How its traffic ended so far (FIN, RST, verification failures, none).
    pub close: Close,
}

/// Where the gateway's port index says "no flow".
const NO_SLOT: Slot = Slot::MAX;

#[derive(Default)]
pub(super) struct Table {
    slab: Slab,
    by_id: IdIndex,
    vat_out: HashMap<Key5, Slot>,
    vat_in: HashMap<Key5, Slot>,
    /// Gateway: the slot of the reservation of (proto, t), at `port_index(proto, t)`; NO_SLOT for
    /// none. A direct array (2 x 65 536 entries, 512 KiB, made at the first reservation) rather
    /// than a hash map: the key space is small and a full engine holds up to 131 070 flows.
    by_port: Vec<Slot>,
}

fn port_index(proto: u8, t: u16) -> usize {
    (proto == PROTO_UDP) as usize * 65536 + t as usize
}

/// The index keys of a flow: agent (outbound 5-tuple, inbound 5-tuple), gateway (proto, t).
enum Keys {
    Vat(Key5, Key5),
    Port((u8, u16)),
}

fn keys_of(f: &Flow) -> Keys {
    match &f.end {
        End::Agent(a) => Keys::Vat((f.proto, a.pen, a.s, a.vin, f.d), (f.proto, a.ggr, f.t, a.pen, a.s)),
        End::Gateway(_) => Keys::Port((f.proto, f.t)),
    }
}

impl Table {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn by_id(&self, id: u32) -> Option<FlowRef> {
        self.by_id.get(id).and_then(|s| self.slab.get(s))
    }

    /// Agent, outbound: `(proto, PEN, s, VIN, d)`.
    pub fn vat_out(&self, k: &Key5) -> Option<FlowRef> {
        self.vat_out.get(k).and_then(|&s| self.slab.get(s))
    }

    /// Agent, inbound: `(proto, GGR, t, PEN, s)`.
    pub fn vat_in(&self, k: &Key5) -> Option<FlowRef> {
        self.vat_in.get(k).and_then(|&s| self.slab.get(s))
    }

    /// Gateway: the reservation of port t.
    pub fn by_port(&self, proto: u8, t: u16) -> Option<FlowRef> {
        match self.by_port.get(port_index(proto, t)) {
            Some(&s) if s != NO_SLOT => self.slab.get(s),
            _ => None,
        }
    }

    /// The number of slots, and the flow in one, for the walks over every flow (expiry, probes,
    /// snapshots).
    pub fn slot_count(&self) -> usize {
        self.slab.slots()
    }

    pub fn slot(&self, i: usize) -> Option<FlowRef> {
        self.slab.get(i as Slot)
    }

    /// Why `f` cannot be added, if it cannot.
    fn conflict(&self, f: &Flow) -> Option<String> {
        if self.by_id.contains(f.id) {
            return Some(format!("flow id {} exists", f.id));
        }
        match keys_of(f) {
            Keys::Vat(o, i) if self.vat_out.contains_key(&o) || self.vat_in.contains_key(&i) => Some("a flow with the same addresses and ports exists".into()),
            Keys::Port(p) if self.by_port(p.0, p.1).is_some() => Some(format!("port {} is already reserved", p.1)),
            _ => None,
        }
    }

    fn insert(&mut self, f: Flow) {
        let (id, keys) = (f.id, keys_of(&f));
        let slot = self.slab.insert(f);
        self.by_id.insert(id, slot);
        match keys {
            Keys::Vat(o, i) => {
                self.vat_out.insert(o, slot);
                self.vat_in.insert(i, slot);
            }
            Keys::Port((proto, t)) => {
                if self.by_port.is_empty() {
                    self.by_port = vec![NO_SLOT; 2 * 65536];
                }
                self.by_port[port_index(proto, t)] = slot;
            }
        }
    }

    fn remove(&mut self, id: u32) -> bool {
        let slot = match self.by_id.remove(id) {
            Some(s) => s,
            None => return false,
        };
        match self.slab.with(slot, |f| keys_of(f)) {
            Some(Keys::Vat(o, i)) => {
                self.vat_out.remove(&o);
                self.vat_in.remove(&i);
            }
            Some(Keys::Port((proto, t))) => {
                if let Some(s) = self.by_port.get_mut(port_index(proto, t)) {
                    if *s == slot {
                        *s = NO_SLOT;
                    }
                }
            }
            None => {}
        }
        self.slab.remove(slot);
        true
    }
}

impl Engine {
    /// Agent: adds a VAT entry with its PIT and releases any packets held for it.
    /// Gateway: adds a reservation for port t.
    pub fn add_flow(&mut self, spec: &FlowSpec, now: u64) -> Result<(), String> {
        if spec.proto != PROTO_TCP && spec.proto != PROTO_UDP {
            return Err("proto must be tcp or udp".into());
        }
        let flow = Flow::new(spec, self.cfg.role, now)?;
        self.insert_flow(flow, now)
    }

    /// Adds a flow made from a spec (and perhaps a snapshot, see snapshot.rs); the agent releases
    /// the packets held for it.
    pub(super) fn insert_flow(&mut self, flow: Flow, now: u64) -> Result<(), String> {
        if let Some(e) = self.table.conflict(&flow) {
            return Err(e);
        }
        let held_key = match keys_of(&flow) {
            Keys::Vat(o, _) => Some(o),
            Keys::Port(_) => None,
        };
        self.table.insert(flow);
        if let Some(q) = held_key.and_then(|k| self.held.take(&k)) {
            for (mut p, h) in q {
                let v = self.process(&mut p, Hook::Out, h, now);
                self.stats.held_released += 1;
                self.outbox.push(OutItem { handle: h, hook: Hook::Out, bytes: if v == Verdict::Accept { Some(p) } else { None }, injected: false });
            }
        }
        Ok(())
    }

    pub fn remove_flow(&mut self, id: u32) -> bool {
        self.table.remove(id)
    }

    /// A snapshot of a flow's state and counters.
    pub fn flow(&self, id: u32) -> Option<FlowInfo> {
        let fr = self.table.by_id(id)?;
        let f = fr.lock()?;
        Some(FlowInfo { id, proto: f.proto, state: f.state, bound: f.is_bound(), t: f.t, d: f.d, binding: f.binding(), c: f.counters(), close: f.close_signal() })
    }

    pub fn flow_count(&self) -> usize {
        self.table.len()
    }
}
