//! The agent's armed pool at the N-API boundary (engine/pool.rs): `poolAdd(h, port)`,
//! `poolRenew(h, proto, t, validMs)`, `poolWithdraw(h, proto, t)`, `poolClear(h)`, `poolExclude(h, vin, d, on)`.

use super::convert::*;
use super::ffi::Value;
use super::instance::Instance;
use crate::engine::{PoolPort, Role};
use crate::host::now_ms;
use crate::lock::lock;

fn agent(inst: &Instance) -> R<()> {
    if lock(&inst.host.eng).cfg.role != Role::Agent {
        return terr("the pool is the agent's");
    }
    Ok(())
}

// poolAdd(h, { proto, vin, ggr, t, serial, tx, rx, validMs, compat? })
pub fn pool_add(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    agent(&inst)?;
    let o = js.get_obj(a[1], "port")?;
    let valid = js.get_uint(js.get(o, "validMs"), "port.validMs", 1e12)?;
    let p = PoolPort {
        proto: proto_of(js, js.get(o, "proto"))?,
        vin: js.get_ip(js.get(o, "vin"), "port.vin")?,
        ggr: js.get_ip(js.get(o, "ggr"), "port.ggr")?,
        t: js.get_port(js.get(o, "t"), "port.t")?,
        serial: js.get_uint(js.get(o, "serial"), "port.serial", u32::MAX as f64)? as u32,
        compat: opt(js, o, "compat", |v| js.get_bool(v, "port.compat"))?.unwrap_or(false),
        tx: keys_of(js, js.get(o, "tx"), "port.tx")?,
        rx: keys_of(js, js.get(o, "rx"), "port.rx")?,
        until: now_ms() + valid,
    };
    let r = lock(&inst.host.eng).pool_add(p);
    match r {
        Ok(()) => Ok(js.undefined()),
        Err(e) => Err(JsErr::Error(e)),
    }
}

// poolRenew(h, proto, t, validMs) -> true if the port is still pooled (its validity moved)
pub fn pool_renew(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let proto = proto_of(js, a[1])?;
    let t = js.get_port(a[2], "t")?;
    let valid = js.get_uint(a[3], "validMs", 1e12)?;
    let r = lock(&inst.host.eng).pool_renew(proto, t, now_ms() + valid);
    Ok(js.boolean(r))
}

// poolWithdraw(h, proto, t) -> true if the port was still pooled (the engine did not take it)
pub fn pool_withdraw(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let proto = proto_of(js, a[1])?;
    let t = js.get_port(a[2], "t")?;
    let r = lock(&inst.host.eng).pool_withdraw(proto, t);
    Ok(js.boolean(r))
}

// poolClear(h) -> the number of ports withdrawn
pub fn pool_clear(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let n = lock(&inst.host.eng).pool_clear();
    Ok(js.num(n as f64))
}

// poolExclude(h, vin, d, on): connections to VIN:d are left to TypeScript (an FTP alias)
pub fn pool_exclude(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let vin = js.get_ip(a[1], "vin")?;
    let d = js.get_port(a[2], "d")?;
    let on = js.get_bool(a[3], "on")?;
    lock(&inst.host.eng).pool_exclude(vin, d, on);
    Ok(js.undefined())
}
