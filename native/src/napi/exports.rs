//! The entry points TypeScript calls (native/lib/binding.ts declares them): engine creation, the
//! flow table, the in-memory data path, punt verdicts, statistics, the backend and the benchmark
//! loop. Each takes its arguments as JavaScript values and throws on bad ones (see convert.rs);
//! events are in events.rs.

use super::convert::*;
use super::ffi::Value;
use super::instance::Instance;
use crate::backend::{self, BackendConfig, QueueSpec};
use crate::engine::{Config, Engine, FailMode, FlowSpec, PuntRule, Role, Verdict};
use crate::host::{now_ms, Host};
use crate::lock::lock;
use crate::pkt::{ip_to_string, parse_ipv4_str};
use std::sync::{Arc, Mutex};

// createEngine(opts)
pub fn create_engine(js: &Js, a: &[Value]) -> R<Value> {
    let o = js.get_obj(a[0], "options")?;
    let role = match js.get_string(js.get(o, "role"), "options.role")?.as_str() {
        "agent" => Role::Agent,
        "gateway" => Role::Gateway,
        _ => return terr("options.role must be 'agent' or 'gateway'"),
    };
    let mut cfg = Config::new(role);
    match role {
        Role::Agent => {
            let s = js.get_string(js.get(o, "vinNet"), "options.vinNet")?;
            let mut it = s.splitn(2, '/');
            let net = it.next().and_then(parse_ipv4_str);
            let pl = it.next().and_then(|p| p.parse::<u8>().ok());
            match (net, pl) {
                (Some(n), Some(p)) if p <= 32 => {
                    cfg.vin_net = n;
                    cfg.vin_prefix = p;
                }
                _ => return terr("options.vinNet must look like '100.64.0.0/16'"),
            }
        }
        Role::Gateway => {
            cfg.ggr = js.get_ip(js.get(o, "ggr"), "options.ggr")?;
            cfg.pgr = js.get_ip(js.get(o, "pgr"), "options.pgr")?;
        }
    }
    if let Some(t) = opt(js, o, "timeouts", |v| js.get_obj(v, "options.timeouts"))? {
        let tm = &mut cfg.timeouts;
        let fields = [
            ("tcpHandshakeMs", &mut tm.tcp_handshake),
            ("tcpEstablishedMs", &mut tm.tcp_established),
            ("tcpClosingMs", &mut tm.tcp_closing),
            ("tcpClosedMs", &mut tm.tcp_closed),
            ("udpIdleMs", &mut tm.udp_idle),
            ("reservationMs", &mut tm.reservation),
            ("heldMs", &mut tm.held),
            ("keepaliveMs", &mut tm.keepalive),
            ("quietProbeMs", &mut tm.quiet_probe),
        ];
        for (name, slot) in fields {
            if let Some(v) = opt(js, t, name, |v| js.get_uint(v, name, 1e12))? {
                *slot = v;
            }
        }
    }
    if let Some(v) = opt(js, o, "maxHeldPerFlow", |v| js.get_uint(v, "maxHeldPerFlow", 4096.0))? {
        cfg.max_held_per_flow = v as usize;
    }
    if let Some(v) = opt(js, o, "maxHeldTotal", |v| js.get_uint(v, "maxHeldTotal", 1e6))? {
        cfg.max_held_total = v as usize;
    }
    if let Some(v) = opt(js, o, "pmtuFloor", |v| js.get_uint(v, "pmtuFloor", 65535.0))? {
        if v < 576 {
            return Err(JsErr::Error("pmtuFloor must be at least 576".into()));
        }
        cfg.pmtu_floor = v as u16;
    }
    if let Some(rules) = opt(js, o, "punt", |v| js.get_array(v, "options.punt"))? {
        for r in rules {
            let r = js.get_obj(r, "punt rule")?;
            cfg.punt.push(PuntRule {
                hook: hook_of(js, js.get(r, "hook"))?,
                proto: proto_of(js, js.get(r, "proto"))?,
                sport: opt(js, r, "sport", |v| js.get_port(v, "sport"))?,
                dport: opt(js, r, "dport", |v| js.get_port(v, "dport"))?,
            });
        }
    }
    if let Some(ports) = opt(js, o, "algPorts", |v| js.get_array(v, "options.algPorts"))? {
        for p in ports {
            cfg.alg_ports.push(js.get_port(p, "algPorts[]")?);
        }
    }
    Ok(Instance { host: Arc::new(Host::new(Engine::new(cfg))), backend: Mutex::new(None) }.into_js(js))
}

/// A flow spec from JavaScript: agent VAT entry or gateway reservation (the role decides).
fn flow_spec(js: &Js, inst: &Arc<Instance>, v: Value) -> R<FlowSpec> {
    let o = js.get_obj(v, "spec")?;
    let role = lock(&inst.host.eng).cfg.role;
    let id = js.get_uint(js.get(o, "id"), "spec.id", u32::MAX as f64)? as u32;
    let proto = proto_of(js, js.get(o, "proto"))?;
    let compat = opt(js, o, "compat", |v| js.get_bool(v, "spec.compat"))?.unwrap_or(false);
    let tx = keys_of(js, js.get(o, "tx"), "spec.tx")?;
    let rx = keys_of(js, js.get(o, "rx"), "spec.rx")?;
    let mut spec = FlowSpec { id, proto, compat, tx, rx, pen: 0, s: 0, vin: 0, d: 0, ggr: 0, t: 0, pin: 0, ports: Vec::new() };
    spec.t = js.get_port(js.get(o, "t"), "spec.t")?;
    match role {
        Role::Agent => {
            spec.pen = js.get_ip(js.get(o, "pen"), "spec.pen")?;
            spec.s = js.get_port(js.get(o, "s"), "spec.s")?;
            spec.vin = js.get_ip(js.get(o, "vin"), "spec.vin")?;
            spec.d = js.get_port(js.get(o, "d"), "spec.d")?;
            spec.ggr = js.get_ip(js.get(o, "ggr"), "spec.ggr")?;
        }
        Role::Gateway => {
            spec.pin = js.get_ip(js.get(o, "pin"), "spec.pin")?;
            if let Some(ps) = opt(js, o, "ports", |v| js.get_array(v, "spec.ports"))? {
                for p in ps {
                    spec.ports.push(js.get_port(p, "spec.ports[]")?);
                }
            }
        }
    }
    Ok(spec)
}

// addFlow(h, spec): agent VAT entry or gateway reservation (the role decides).
pub fn add_flow(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let spec = flow_spec(js, &inst, a[1])?;
    let r = lock(&inst.host.eng).add_flow(&spec, now_ms());
    inst.after();
    match r {
        Ok(()) => Ok(js.undefined()),
        Err(e) => Err(JsErr::Error(e)),
    }
}

// importFlow(h, spec, snapshot): a flow as a restart puts it back (engine/snapshot.rs)
pub fn import_flow(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let spec = flow_spec(js, &inst, a[1])?;
    let snap = js.get_bytes(a[2], "snapshot")?.to_vec();
    let r = lock(&inst.host.eng).import_flow(&spec, &snap, now_ms());
    inst.after();
    match r {
        Ok(()) => Ok(js.undefined()),
        Err(e) => Err(JsErr::Error(e)),
    }
}

// flowSnapshot(h, id) -> Buffer | null
pub fn flow_snapshot(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let id = js.get_uint(a[1], "id", u32::MAX as f64)? as u32;
    let s = lock(&inst.host.eng).snapshot_of(id);
    Ok(match s {
        Some(b) => js.buffer(&b),
        None => js.null(),
    })
}

// flowSnapshots(h) -> [{id, snapshot: Buffer}]: every flow that has one (TCP, bound)
pub fn flow_snapshots(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let snaps = lock(&inst.host.eng).snapshots();
    let arr = js.array(snaps.len());
    for (i, (id, s)) in snaps.iter().enumerate() {
        let o = js.object();
        js.set(o, "id", js.num(*id as f64));
        js.set(o, "snapshot", js.buffer(s));
        js.push(arr, i, o);
    }
    Ok(arr)
}

pub fn remove_flow(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let id = js.get_uint(a[1], "id", u32::MAX as f64)? as u32;
    let r = lock(&inst.host.eng).remove_flow(id);
    Ok(js.boolean(r))
}

// resetFlow(h, id) -> boolean: agent, a live flow the gateway lost (held.rs, reset_flow)
pub fn reset_flow(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let id = js.get_uint(a[1], "id", u32::MAX as f64)? as u32;
    let r = lock(&inst.host.eng).reset_flow(id);
    inst.after();
    Ok(js.boolean(r))
}

// process(h, packet, hook) -> {verdict, packet?, reason?, puntId?}
pub fn process(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let pkt = js.get_bytes(a[1], "packet")?;
    let hook = hook_of(js, a[2])?;
    if pkt.len() > 65535 {
        return terr("packet is longer than 65535 bytes");
    }
    let now = now_ms();
    let (v, out) = {
        let mut e = lock(&inst.host.eng);
        let r = e.process_copy(pkt, hook, now);
        e.sweep(now, 16);
        r
    };
    inst.after();
    let o = js.object();
    match v {
        Verdict::Accept => {
            js.set(o, "verdict", js.string("accept"));
            js.set(o, "packet", js.buffer(&out));
        }
        Verdict::Drop(r) => {
            js.set(o, "verdict", js.string("drop"));
            js.set(o, "reason", js.string(r.as_str()));
        }
        Verdict::Held => js.set(o, "verdict", js.string("held")),
        Verdict::Punted(id) => {
            js.set(o, "verdict", js.string("punted"));
            js.set(o, "puntId", js.num(id as f64));
        }
    }
    Ok(o)
}

// processInto(h, packet, hook, out) -> number: the allocation-free form of process(). Returns the
// length of the packet written to `out` (accept), or -1 drop, -2 held, -3 punted.
pub fn process_into(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let pkt = js.get_bytes(a[1], "packet")?;
    let hook = hook_of(js, a[2])?;
    let (out_ptr, out_len) = js.get_bytes_mut(a[3], "out")?;
    if pkt.len() > 65535 {
        return terr("packet is longer than 65535 bytes");
    }
    let now = now_ms();
    let r = {
        let mut e = lock(&inst.host.eng);
        let r = e.process_into(pkt, hook, now, out_len);
        if let Ok(n) = r {
            let src = e.scratch_bytes(n);
            // `out` is a live Uint8Array owned by the caller (checked to hold n bytes). It may
            // alias `packet`, which is no longer read: the input was copied first.
            unsafe { std::ptr::copy(src.as_ptr(), out_ptr, src.len()) };
        }
        e.sweep(now, 16);
        r
    };
    inst.after();
    let code: f64 = match r {
        Ok(n) => n as f64,
        Err(Verdict::Held) => -2.0,
        Err(Verdict::Punted(_)) => -3.0,
        Err(Verdict::Accept) => return Err(JsErr::Error("out is too small for the translated packet".into())),
        Err(Verdict::Drop(_)) => -1.0,
    };
    Ok(js.num(code))
}

pub fn take_released(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let items = std::mem::take(&mut *lock(&inst.host.released));
    let arr = js.array(items.len());
    for (i, (hook, bytes)) in items.iter().enumerate() {
        let o = js.object();
        js.set(o, "hook", js.string(hook.as_str()));
        js.set(o, "packet", js.buffer(bytes));
        js.push(arr, i, o);
    }
    Ok(arr)
}

// failHeld(h, {proto, src, sport, dst, dport}, mode) -> number
pub fn fail_held(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let o = js.get_obj(a[1], "key")?;
    let key = (
        proto_of(js, js.get(o, "proto"))?,
        js.get_ip(js.get(o, "src"), "key.src")?,
        js.get_port(js.get(o, "sport"), "key.sport")?,
        js.get_ip(js.get(o, "dst"), "key.dst")?,
        js.get_port(js.get(o, "dport"), "key.dport")?,
    );
    let mode = match js.get_string(a[2], "mode")?.as_str() {
        "rst" => FailMode::Reset,
        "unreachable" => FailMode::PortUnreachable,
        "prohibited" => FailMode::AdminProhibited,
        "silent" => FailMode::Silent,
        _ => return terr("mode must be 'rst', 'unreachable', 'prohibited' or 'silent'"),
    };
    let n = lock(&inst.host.eng).fail_held(key, mode);
    inst.after();
    Ok(js.num(n as f64))
}

// verdict(h, puntId, accept, replacement?) -> boolean
pub fn verdict(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let id = js.get_uint(a[1], "puntId", 9.0e15)?;
    let accept = js.get_bool(a[2], "accept")?;
    let rep = if js.is_nullish(a[3]) { None } else { Some(js.get_bytes(a[3], "replacement")?) };
    let r = lock(&inst.host.eng).punt_verdict(id, accept, rep, now_ms());
    inst.after();
    match r {
        Ok(b) => Ok(js.boolean(b)),
        Err(e) => Err(JsErr::Error(e)),
    }
}

pub fn stats(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let o = js.object();
    {
        let e = lock(&inst.host.eng);
        e.stats.for_each(|k, v| js.set(o, k, js.num(v as f64)));
        let d = js.object();
        e.stats.drops.for_each(|k, v| js.set(d, k, js.num(v as f64)));
        js.set(o, "drops", d);
        js.set(o, "flows", js.num(e.flow_count() as f64));
        js.set(o, "heldNow", js.num(e.held_count() as f64));
    }
    match inst.backend() {
        Some(b) => {
            let bo = js.object();
            js.set(bo, "name", js.string(b.name()));
            for (k, v) in b.counters() {
                js.set(bo, k, js.num(v as f64));
            }
            let per = b.queue_counters();
            if !per.is_empty() {
                let qa = js.array(per.len());
                for (i, (num, received, verdicts)) in per.into_iter().enumerate() {
                    let qo = js.object();
                    js.set(qo, "num", js.num(num as f64));
                    js.set(qo, "received", js.num(received as f64));
                    js.set(qo, "verdicts", js.num(verdicts as f64));
                    js.push(qa, i, qo);
                }
                js.set(bo, "queues", qa);
            }
            js.set(o, "backend", bo);
        }
        None => js.set(o, "backend", js.null()),
    }
    Ok(o)
}

pub fn flow_stats(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let id = js.get_uint(a[1], "id", u32::MAX as f64)? as u32;
    let e = lock(&inst.host.eng);
    let f = match e.flow(id) {
        Some(f) => f,
        None => return Ok(js.null()),
    };
    let o = js.object();
    js.set(o, "id", js.num(id as f64));
    js.set(o, "proto", js.string(proto_name(f.proto)));
    js.set(o, "state", js.string(f.state.as_str()));
    js.set(o, "bound", js.boolean(f.bound));
    js.set(o, "t", js.num(f.t as f64));
    js.set(o, "d", js.num(f.d as f64));
    js.set(o, "close", js.string(f.close.as_str()));
    set_counters(js, o, &f.c);
    if let Some(b) = f.binding {
        js.set(o, "ghr", js.string(&ip_to_string(b.ghr)));
        js.set(o, "m", js.num(b.m as f64));
    }
    Ok(o)
}

// startNfqueue(h, {queues: [{num, hook}], maxLen?, batch?, spinUs?, gso?, verdictThread?})
pub fn start_nfqueue(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let o = js.get_obj(a[1], "options")?;
    let mut queues = Vec::new();
    for q in js.get_array(js.get(o, "queues"), "options.queues")? {
        let q = js.get_obj(q, "queue")?;
        queues.push(QueueSpec { num: js.get_port(js.get(q, "num"), "queue.num")?, hook: hook_of(js, js.get(q, "hook"))? });
    }
    let max_len = opt(js, o, "maxLen", |v| js.get_uint(v, "maxLen", 1e6))?.unwrap_or(8192) as u32;
    let batch = opt(js, o, "batch", |v| js.get_uint(v, "batch", 256.0))?.unwrap_or(64) as usize;
    let spin_us = opt(js, o, "spinUs", |v| js.get_uint(v, "spinUs", 1000.0))?.unwrap_or(0) as u32;
    let gso = opt(js, o, "gso", |v| js.get_bool(v, "gso"))?.unwrap_or(false);
    let verdict_thread = opt(js, o, "verdictThread", |v| js.get_bool(v, "verdictThread"))?.unwrap_or(false);
    let mut running = lock(&inst.backend);
    if running.is_some() {
        return Err(JsErr::Error("a backend is already running".into()));
    }
    *running = Some(backend::start(inst.host.clone(), BackendConfig { queues, max_len, batch, spin_us, gso, verdict_thread }).map_err(JsErr::Error)?);
    Ok(js.undefined())
}

pub fn stop(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    inst.stop();
    Ok(js.undefined())
}

// probe(h, id | null) -> number: agent probes sent now (one flow, or every live flow with null).
pub fn probe(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let n = {
        let mut e = lock(&inst.host.eng);
        if js.is_nullish(a[1]) {
            e.probe_all(now_ms())
        } else {
            let id = js.get_uint(a[1], "id", 4294967295.0)? as u32;
            e.probe(id, now_ms()) as usize
        }
    };
    inst.after();
    Ok(js.num(n as f64))
}

pub fn sweep(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    {
        let mut e = lock(&inst.host.eng);
        let n = e.flow_count() + 1;
        e.sweep(now_ms(), n);
    }
    inst.after();
    Ok(js.undefined())
}

// benchLoop(payloadBytes, seconds) -> {packets, seconds}: the engine's own cost, no N-API per packet.
pub fn bench_loop(js: &Js, a: &[Value]) -> R<Value> {
    let size = js.get_uint(a[0], "payloadBytes", 9000.0)? as usize;
    let secs = js.get_f64(a[1], "seconds")?;
    if !(0.0..=60.0).contains(&secs) {
        return terr("seconds must be in 0..60");
    }
    match crate::bench::run(size, secs) {
        Ok((n, s)) => {
            let o = js.object();
            js.set(o, "packets", js.num(n as f64));
            js.set(o, "seconds", js.num(s));
            Ok(o)
        }
        Err(e) => Err(JsErr::Error(e)),
    }
}
