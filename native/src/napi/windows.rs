//! N-API exports of the Windows agent's native parts: the WinDivert backend and DPAPI. They
//! exist on every platform (so native/index.ts has one shape); off Windows, the ones that need
//! Windows throw a sentence saying so. `winDivertFilters` is portable (the agent's filters as
//! data, for the service host's guard and for tests).
//!
//!   winDivertFilters({vinNet, ggr, ports: [lo, hi], resolvers?}) -> [{role, filter, priority, drop}]
//!   checkWinDivert(dir, {…same…})   -> same, after WinDivert.dll's own compiler accepted each filter
//!   startWinDivert(h, {dir, …same…, queueLen?, batch?})
//!   dpapiProtect(bytes, machine) -> Buffer        dpapiUnprotect(bytes) -> Buffer

use super::convert::{opt, terr, Js, JsErr, R};
use super::ffi::Value;
use crate::backend::windivert_rules::{AgentDivert, HandleSpec};
use crate::pkt::parse_ipv4_str;

fn divert_of(js: &Js, o: Value) -> R<AgentDivert> {
    let s = js.get_string(js.get(o, "vinNet"), "options.vinNet")?;
    let mut it = s.splitn(2, '/');
    let (vin_net, vin_prefix) = match (it.next().and_then(parse_ipv4_str), it.next().and_then(|p| p.parse::<u8>().ok())) {
        (Some(n), Some(p)) if p <= 32 => (n, p),
        _ => return terr("options.vinNet must look like '198.19.224.0/20'"),
    };
    let ggr = js.get_ip(js.get(o, "ggr"), "options.ggr")?;
    let ports = js.get_array(js.get(o, "ports"), "options.ports")?;
    if ports.len() != 2 {
        return terr("options.ports must be [first, last]");
    }
    let ports = (js.get_port(ports[0], "options.ports[0]")?, js.get_port(ports[1], "options.ports[1]")?);
    let mut resolvers = Vec::new();
    if let Some(rs) = opt(js, o, "resolvers", |v| js.get_array(v, "options.resolvers"))? {
        for r in rs {
            resolvers.push(js.get_ip(r, "options.resolvers[]")?);
        }
    }
    let d = AgentDivert { vin_net, vin_prefix, ggr, ports, resolvers };
    d.check().map_err(JsErr::Type)?;
    Ok(d)
}

fn specs_to_js(js: &Js, specs: &[HandleSpec]) -> Value {
    let arr = js.array(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let o = js.object();
        js.set(o, "role", js.string(s.role.name()));
        js.set(o, "filter", js.string(&s.filter));
        js.set(o, "priority", js.num(s.priority as f64));
        js.set(o, "drop", js.boolean(s.flags & crate::backend::windivert_abi::FLAG_DROP != 0));
        js.push(arr, i, o);
    }
    arr
}

pub(super) fn windivert_filters(js: &Js, a: &[Value]) -> R<Value> {
    let d = divert_of(js, js.get_obj(a[0], "options")?)?;
    let specs = d.handles().map_err(JsErr::Type)?;
    Ok(specs_to_js(js, &specs))
}

#[cfg(windows)]
pub(super) fn check_windivert(js: &Js, a: &[Value]) -> R<Value> {
    let dir = js.get_string(a[0], "dir")?;
    let d = divert_of(js, js.get_obj(a[1], "options")?)?;
    let specs = crate::backend::check_windivert_filters(&dir, &d).map_err(JsErr::Error)?;
    Ok(specs_to_js(js, &specs))
}

#[cfg(windows)]
pub(super) fn start_windivert(js: &Js, a: &[Value]) -> R<Value> {
    use crate::backend::{start_windivert, WinDivertConfig};
    use crate::lock::lock;
    let inst = super::instance::Instance::of(js, a[0])?;
    let o = js.get_obj(a[1], "options")?;
    let dir = js.get_string(js.get(o, "dir"), "options.dir")?;
    let divert = divert_of(js, o)?;
    let queue_len = opt(js, o, "queueLen", |v| js.get_uint(v, "queueLen", 16384.0))?.unwrap_or(8192);
    let batch = opt(js, o, "batch", |v| js.get_uint(v, "batch", 255.0))?.unwrap_or(64) as usize;
    let mut running = lock(&inst.backend);
    if running.is_some() {
        return Err(JsErr::Error("a backend is already running".into()));
    }
    *running = Some(start_windivert(inst.host.clone(), WinDivertConfig { dir, divert, queue_len, batch }).map_err(JsErr::Error)?);
    Ok(js.undefined())
}

#[cfg(windows)]
pub(super) fn dpapi_protect(js: &Js, a: &[Value]) -> R<Value> {
    let data = js.get_bytes(a[0], "data")?;
    let machine = js.get_bool(a[1], "machine")?;
    let out = crate::dpapi_windows::protect(data, machine).map_err(JsErr::Error)?;
    Ok(js.buffer(&out))
}

#[cfg(windows)]
pub(super) fn dpapi_unprotect(js: &Js, a: &[Value]) -> R<Value> {
    let data = js.get_bytes(a[0], "data")?;
    let out = crate::dpapi_windows::unprotect(data).map_err(JsErr::Error)?;
    Ok(js.buffer(&out))
}

#[cfg(not(windows))]
fn windows_only(what: &str) -> R<Value> {
    Err(JsErr::Error(format!("{} is Windows-only (this is the {} build)", what, std::env::consts::OS)))
}
#[cfg(not(windows))]
pub(super) fn check_windivert(_js: &Js, _a: &[Value]) -> R<Value> {
    windows_only("WinDivert")
}
#[cfg(not(windows))]
pub(super) fn start_windivert(_js: &Js, _a: &[Value]) -> R<Value> {
    windows_only("WinDivert")
}
#[cfg(not(windows))]
pub(super) fn dpapi_protect(_js: &Js, _a: &[Value]) -> R<Value> {
    windows_only("DPAPI")
}
#[cfg(not(windows))]
pub(super) fn dpapi_unprotect(_js: &Js, _a: &[Value]) -> R<Value> {
    windows_only("DPAPI")
}
