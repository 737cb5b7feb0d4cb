//! Flow snapshots: the per-flow state a live TCP flow needs to go on after its daemon restarts
//! (docs/reliability.md, "What the engine exports"). The daemon stores a snapshot with the flow's
//! row (its keys come from the row, never from here) and, at start, installs the flow from both
//! (`import_flow`) instead of `add_flow`.
//!
//! What a snapshot holds: the flow's state, the sequence number extension of both directions
//! (RFC 5925 §6.2: the highest sequence number and its SNE), its TCP connection (conn.rs: both
//! ISNs, which every MAC covers, the acknowledged points and ends of both sides, where the FINs
//! sit), and the role's own part - the gateway's committed binding (GHR:m, learned d) and its ALG
//! state (whether the flow goes through the ALG, and the sequence adjustment of its rewritten
//! replies).
//!
//! A snapshot may be older than the flow (the daemons write them every half second or so): the
//! sequence extension stays right as long as the flow moved less than 2 GiB since, the same bound
//! a live flow has between two segments; the acknowledged points only grow, so older ones let a
//! replay of the last moments' segments through whole, which the receiving TCP discards as a
//! duplicate (without a restart, conn.rs would have passed it bare); an ALG rewrite after the
//! snapshot is lost (its offset is not applied).
//!
//! Only TCP flows have snapshots (a gateway reservation once its binding committed). A UDP flow's
//! counter and replay window cannot be carried safely from a snapshot that may be stale: the
//! sender would reuse counters (the same keystream) and the receiver would accept again datagrams
//! it had already taken. A restart ends UDP flows (their applications send again on a new flow).
//!
//! Format 1, big-endian: version, role (0 agent, 1 gateway), proto, state, d, t; txseq and rxseq
//! (init, SNE, high); the connection (each optional field a presence byte, then the value: ISN
//! local and remote as u32; acknowledgments local and remote, ends local and remote, FINs local
//! and remote as u64; a RST seen); then, gateway only: bound, GHR, m, ALG, adjustment (active, pos, before,
//! after).

use super::conn::{Conn, ConnParts};
use super::flow::{Binding, End, Flow, FlowState};
use super::table::FlowSpec;
use super::{Engine, Role};
use crate::pccom::SeqTrack;
use crate::pkt::PROTO_TCP;
use crate::seqadj::SeqAdj;

pub const SNAPSHOT_FORMAT: u8 = 1;
const AGENT_LEN: usize = 91;
const GATEWAY_LEN: usize = AGENT_LEN + 21;

fn state_of(b: u8) -> Option<FlowState> {
    [FlowState::Reserved, FlowState::Handshake, FlowState::Established, FlowState::Closing, FlowState::Closed, FlowState::Udp].get(b as usize).copied()
}

struct Wr(Vec<u8>);

impl Wr {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn opt32(&mut self, v: Option<u32>) {
        self.u8(v.is_some() as u8);
        self.u32(v.unwrap_or(0));
    }
    fn opt64(&mut self, v: Option<u64>) {
        self.u8(v.is_some() as u8);
        self.0.extend_from_slice(&v.unwrap_or(0).to_be_bytes());
    }
    fn seq(&mut self, s: &SeqTrack) {
        self.u8(s.init as u8);
        self.u32(s.sne);
        self.u32(s.high);
    }
}

/// A bounds-checked reader over a snapshot (its length is checked before it is read).
struct Rd<'a>(&'a [u8], usize);

impl<'a> Rd<'a> {
    fn u8(&mut self) -> u8 {
        let v = self.0[self.1];
        self.1 += 1;
        v
    }
    fn u16(&mut self) -> u16 {
        let v = u16::from_be_bytes([self.0[self.1], self.0[self.1 + 1]]);
        self.1 += 2;
        v
    }
    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[self.1..self.1 + 4]);
        self.1 += 4;
        u32::from_be_bytes(b)
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[self.1..self.1 + 8]);
        self.1 += 8;
        u64::from_be_bytes(b)
    }
    fn flag(&mut self) -> Result<bool, String> {
        match self.u8() {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("flow snapshot: a flag is neither 0 nor 1".into()),
        }
    }
    fn opt32(&mut self) -> Result<Option<u32>, String> {
        let some = self.flag()?;
        let v = self.u32();
        Ok(if some { Some(v) } else { None })
    }
    fn opt64(&mut self) -> Result<Option<u64>, String> {
        let some = self.flag()?;
        let v = self.u64();
        Ok(if some { Some(v) } else { None })
    }
    fn seq(&mut self) -> Result<SeqTrack, String> {
        Ok(SeqTrack { init: self.flag()?, sne: self.u32(), high: self.u32() })
    }
}

impl Flow {
    /// The flow's snapshot, or None for a flow that has none (UDP; a reservation not bound yet).
    pub fn snapshot(&self) -> Option<Vec<u8>> {
        if self.proto != PROTO_TCP || !self.is_bound() {
            return None;
        }
        let mut w = Wr(Vec::with_capacity(GATEWAY_LEN));
        w.u8(SNAPSHOT_FORMAT);
        w.u8(self.agent().is_none() as u8);
        w.u8(self.proto);
        w.u8(self.state as u8);
        w.u16(self.d);
        w.u16(self.t);
        w.seq(&self.txseq);
        w.seq(&self.rxseq);
        let c = self.conn.parts();
        w.opt32(c.isn_local);
        w.opt32(c.isn_remote);
        for v in c.pos {
            w.opt64(v);
        }
        w.u8(c.rst as u8);
        if let End::Gateway(g) = &self.end {
            let b = g.bound().unwrap_or_default();
            w.u8(g.bound().is_some() as u8);
            w.u32(b.ghr);
            w.u16(b.m);
            w.u8(g.alg as u8);
            w.u8(g.adj().active as u8);
            w.u32(g.adj().pos);
            w.u32(g.adj().before as u32);
            w.u32(g.adj().after as u32);
        }
        Some(w.0)
    }

    /// Puts a snapshot's state into a flow just made from its spec. The snapshot must be of the
    /// same role, protocol and port t (and, for the agent, port d) as the spec.
    fn restore(&mut self, snap: &[u8]) -> Result<(), String> {
        let agent = self.agent().is_some();
        let want = if agent { AGENT_LEN } else { GATEWAY_LEN };
        if snap.first() != Some(&SNAPSHOT_FORMAT) {
            return Err(format!("flow snapshot: unknown format {:?}", snap.first()));
        }
        if snap.len() != want {
            return Err(format!("flow snapshot: {} bytes, {} expected", snap.len(), want));
        }
        let mut r = Rd(snap, 1);
        if r.u8() != (!agent) as u8 {
            return Err("flow snapshot: made by the other role".into());
        }
        if r.u8() != self.proto || self.proto != PROTO_TCP {
            return Err("flow snapshot: only TCP flows have one, of the same protocol".into());
        }
        let state = match state_of(r.u8()) {
            Some(FlowState::Udp) | Some(FlowState::Reserved) | None => return Err("flow snapshot: bad state".into()),
            Some(s) => s,
        };
        let (d, t) = (r.u16(), r.u16());
        if t != self.t || (agent && d != self.d) {
            return Err("flow snapshot: of another flow (ports differ)".into());
        }
        let (txseq, rxseq) = (r.seq()?, r.seq()?);
        let (isn_local, isn_remote) = (r.opt32()?, r.opt32()?);
        let mut v = [None; 6];
        for x in v.iter_mut() {
            *x = r.opt64()?;
        }
        let rst = r.flag()?;
        let conn = Conn::from_parts(&ConnParts { isn_local, isn_remote, pos: v, rst })?;
        if let End::Gateway(g) = &mut self.end {
            let bound = r.flag()?;
            let b = Binding { ghr: r.u32(), m: r.u16() };
            if !bound || d == 0 || (!g.ports.is_empty() && !g.ports.contains(&d)) {
                return Err("flow snapshot: not bound, or to a port the reservation does not allow".into());
            }
            g.bind(b);
            g.alg = r.flag()?;
            g.set_adj(SeqAdj { active: r.flag()?, pos: r.u32(), before: r.u32() as i32, after: r.u32() as i32 });
        }
        self.d = d;
        self.state = state;
        self.txseq = txseq;
        self.rxseq = rxseq;
        self.conn = conn;
        Ok(())
    }
}

impl Engine {
    /// The snapshot of every flow that has one, by flow id.
    pub fn snapshots(&self) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        for i in 0..self.table.slot_count() {
            let fr = self.table.slot(i);
            if let Some(f) = fr.as_ref().and_then(|fr| fr.lock()) {
                if let Some(s) = f.snapshot() {
                    out.push((f.id, s));
                }
            };
        }
        out
    }

    /// The snapshot of flow `id`, if it has one.
    pub fn snapshot_of(&self, id: u32) -> Option<Vec<u8>> {
        self.table.by_id(id).and_then(|fr| fr.lock()?.snapshot())
    }

    /// Installs a flow from its spec and a snapshot of its state (a restart): the flow goes on
    /// where the snapshot left it. Refused, with the reason, if the snapshot does not fit.
    pub fn import_flow(&mut self, spec: &FlowSpec, snap: &[u8], now: u64) -> Result<(), String> {
        let mut flow = Flow::new(spec, self.cfg.role, now)?;
        flow.restore(snap)?;
        if self.cfg.role == Role::Gateway && flow.gateway().map_or(false, |g| g.alg) != self.cfg.alg_ports.contains(&flow.d) {
            return Err("flow snapshot: ALG state does not match this engine's ALG ports".into());
        }
        self.insert_flow(flow, now)
    }
}
