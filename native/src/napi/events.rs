//! Events to JavaScript: `pollEvents` takes them, `onEvents` registers a callback that node calls
//! on its own thread (a thread-safe function, woken by the host when events are waiting, so
//! backend threads never call into JavaScript). Each event becomes a plain object whose `type`
//! is `Event::type_name`.

use super::convert::*;
use super::ffi::*;
use super::instance::Instance;
use crate::engine::Event;
use crate::host::Host;
use crate::lock::lock;
use crate::pkt::ip_to_string;
use std::os::raw::c_void;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn events_to_js(js: &Js, evs: &[Event]) -> Value {
    let arr = js.array(evs.len());
    for (i, e) in evs.iter().enumerate() {
        let o = js.object();
        js.set(o, "type", js.string(e.type_name()));
        match e {
            Event::Held { proto, src, sport, dst, dport } => {
                js.set(o, "proto", js.string(proto_name(*proto)));
                js.set(o, "src", js.string(&ip_to_string(*src)));
                js.set(o, "sport", js.num(*sport as f64));
                js.set(o, "dst", js.string(&ip_to_string(*dst)));
                js.set(o, "dport", js.num(*dport as f64));
            }
            Event::PoolTaken { id, proto, t, serial, src, sport, dst, dport } => {
                js.set(o, "id", js.num(*id as f64));
                js.set(o, "proto", js.string(proto_name(*proto)));
                js.set(o, "t", js.num(*t as f64));
                js.set(o, "serial", js.num(*serial as f64));
                js.set(o, "src", js.string(&ip_to_string(*src)));
                js.set(o, "sport", js.num(*sport as f64));
                js.set(o, "dst", js.string(&ip_to_string(*dst)));
                js.set(o, "dport", js.num(*dport as f64));
            }
            Event::HeldExpired { proto, src, sport, dst, dport, count } => {
                js.set(o, "proto", js.string(proto_name(*proto)));
                js.set(o, "src", js.string(&ip_to_string(*src)));
                js.set(o, "sport", js.num(*sport as f64));
                js.set(o, "dst", js.string(&ip_to_string(*dst)));
                js.set(o, "dport", js.num(*dport as f64));
                js.set(o, "count", js.num(*count as f64));
            }
            Event::Bound { id, proto, t, ghr, m, pin, d } => {
                js.set(o, "id", js.num(*id as f64));
                js.set(o, "proto", js.string(proto_name(*proto)));
                js.set(o, "t", js.num(*t as f64));
                js.set(o, "ghr", js.string(&ip_to_string(*ghr)));
                js.set(o, "m", js.num(*m as f64));
                js.set(o, "pin", js.string(&ip_to_string(*pin)));
                js.set(o, "d", js.num(*d as f64));
            }
            Event::Expired { id, proto, t, state, close, c } => {
                js.set(o, "id", js.num(*id as f64));
                js.set(o, "proto", js.string(proto_name(*proto)));
                js.set(o, "t", js.num(*t as f64));
                js.set(o, "state", js.string(state));
                js.set(o, "close", js.string(close));
                set_counters(js, o, c);
            }
            Event::VerifyFailed { id, proto, src, sport, dport, reason, count } => {
                js.set(o, "id", match id {
                    Some(i) => js.num(*i as f64),
                    None => js.null(),
                });
                js.set(o, "proto", js.string(proto_name(*proto)));
                js.set(o, "src", js.string(&ip_to_string(*src)));
                js.set(o, "sport", js.num(*sport as f64));
                js.set(o, "dport", js.num(*dport as f64));
                js.set(o, "reason", js.string(reason));
                js.set(o, "count", js.num(*count as f64));
            }
            Event::Punt { id, hook, flow, bytes } => {
                js.set(o, "id", js.num(*id as f64));
                js.set(o, "hook", js.string(hook.as_str()));
                js.set(o, "flow", match flow {
                    Some(f) => js.num(*f as f64),
                    None => js.null(),
                });
                js.set(o, "packet", js.buffer(bytes));
            }
        }
        js.push(arr, i, o);
    }
    arr
}

pub fn poll_events(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    let evs = std::mem::take(&mut lock(&inst.host.eng).events);
    Ok(events_to_js(js, &evs))
}

struct TsfnBox(Tsfn);
unsafe impl Send for TsfnBox {}
unsafe impl Sync for TsfnBox {}

unsafe extern "C" fn call_js(env: Env, func: Value, ctx: *mut c_void, _data: *mut c_void) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if env.is_null() || ctx.is_null() {
            return;
        }
        let host = &*(ctx as *const Host);
        host.notify_pending.store(false, Ordering::Release);
        let evs = std::mem::take(&mut lock(&host.eng).events);
        if evs.is_empty() {
            return;
        }
        let js = Js(env);
        let arr = events_to_js(&js, &evs);
        let mut res = std::ptr::null_mut();
        let u = js.undefined();
        napi_call_function(env, u, func, 1, &arr, &mut res);
    }));
}

unsafe extern "C" fn tsfn_finalize(_env: Env, data: *mut c_void, _hint: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        if !data.is_null() {
            drop(Arc::from_raw(data as *const Host));
        }
    });
}

// onEvents(h, fn): events are delivered in batches on the JS thread.
pub fn on_events(js: &Js, a: &[Value]) -> R<Value> {
    let inst = Instance::of(js, a[0])?;
    if js.ty(a[1]) != T_FUNCTION {
        return terr("callback must be a function");
    }
    let name = js.string("gsra-engine-events");
    let host = inst.host.clone();
    let ctx = Arc::into_raw(host.clone()) as *mut c_void;
    let mut tsfn: Tsfn = std::ptr::null_mut();
    let st = unsafe { napi_create_threadsafe_function(js.0, a[1], std::ptr::null_mut(), name, 0, 1, ctx, Some(tsfn_finalize), ctx, call_js, &mut tsfn) };
    if st != 0 {
        unsafe { drop(Arc::from_raw(ctx as *const Host)) };
        return Err(JsErr::Error("napi_create_threadsafe_function failed".into()));
    }
    unsafe { napi_unref_threadsafe_function(js.0, tsfn) };
    let b = TsfnBox(tsfn);
    let old = lock(&host.notify).replace(Box::new(move || {
        let t = &b;
        unsafe { napi_call_threadsafe_function(t.0, std::ptr::null_mut(), 0) };
    }));
    drop(old);
    host.notify_pending.store(false, Ordering::Release);
    let have = !lock(&host.eng).events.is_empty();
    host.maybe_notify(have);
    Ok(js.undefined())
}

/// `Event::TYPES` as a JavaScript array (the module's `eventTypes`, checked by napi.test.ts
/// against native/lib/names.generated.ts).
pub fn event_types(js: &Js) -> Value {
    let arr = js.array(Event::TYPES.len());
    for (i, t) in Event::TYPES.iter().enumerate() {
        js.push(arr, i, js.string(t));
    }
    arr
}
