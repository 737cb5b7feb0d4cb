//! The N-API surface node loads: `napi_register_module_v1` puts the entry points on the module's
//! exports. `ffi.rs` declares N-API by hand, `convert.rs` converts arguments and results,
//! `exports.rs` holds the entry points, `events.rs` marshals events, `instance.rs` is what an
//! engine handle points to, `windows.rs` the Windows agent's exports (WinDivert, DPAPI),
//! `crypto.rs` the control protocol's HKDF-SHA256 and HMAC-SHA256. Every entry point catches panics; wrong argument types throw
//! `TypeError`, wrong values `Error`.

#![allow(clippy::missing_safety_doc)]

mod convert;
mod events;
mod exports;
mod crypto;
mod ffi;
mod instance;
mod pool;
mod windows;
#[cfg(test)]
mod typescript;

use convert::{cstr, Js, JsErr, R};
use ffi::*;
use std::os::raw::c_char;

/// Runs `f` with the call's arguments, turning errors and panics into JS exceptions.
unsafe fn entry(env: Env, info: CbInfo, f: fn(&Js, &[Value]) -> R<Value>) -> Value {
    let js = Js(env);
    let mut argc: usize = 8;
    let mut argv: [Value; 8] = [std::ptr::null_mut(); 8];
    napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), std::ptr::null_mut(), std::ptr::null_mut());
    let n = std::cmp::min(argc, 8);
    let u = js.undefined();
    let mut args = [u; 8];
    args[..n].copy_from_slice(&argv[..n]);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&js, &args)));
    let mut pending = false;
    match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            napi_is_exception_pending(env, &mut pending);
            if !pending {
                match e {
                    JsErr::Type(m) => {
                        let c = cstr(&m);
                        napi_throw_type_error(env, std::ptr::null(), c.as_ptr() as *const c_char);
                    }
                    JsErr::Error(m) => {
                        let c = cstr(&m);
                        napi_throw_error(env, std::ptr::null(), c.as_ptr() as *const c_char);
                    }
                }
            }
            js.undefined()
        }
        Err(_) => {
            let c = cstr("internal error in the GSRA engine (panic caught)");
            napi_throw_error(env, std::ptr::null(), c.as_ptr() as *const c_char);
            js.undefined()
        }
    }
}

/// The entry points as (JavaScript name, C callback), each wrapped by `entry`.
macro_rules! entry_points {
    ($($name:literal => $imp:path,)*) => {{
        let fns: &[(&str, Callback)] = &[$({
            unsafe extern "C" fn cb(env: Env, info: CbInfo) -> Value {
                entry(env, info, $imp)
            }
            ($name, cb as Callback)
        },)*];
        fns
    }};
}

#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: Env, exports: Value) -> Value {
    let r = std::panic::catch_unwind(|| {
        let fns = entry_points! {
            "processInto" => exports::process_into,
            "benchLoop" => exports::bench_loop,
            "createEngine" => exports::create_engine,
            "addFlow" => exports::add_flow,
            "removeFlow" => exports::remove_flow,
            "resetFlow" => exports::reset_flow,
            "importFlow" => exports::import_flow,
            "flowSnapshots" => exports::flow_snapshots,
            "flowSnapshot" => exports::flow_snapshot,
            "process" => exports::process,
            "takeReleased" => exports::take_released,
            "failHeld" => exports::fail_held,
            "poolAdd" => pool::pool_add,
            "poolRenew" => pool::pool_renew,
            "poolWithdraw" => pool::pool_withdraw,
            "poolClear" => pool::pool_clear,
            "poolExclude" => pool::pool_exclude,
            "verdict" => exports::verdict,
            "stats" => exports::stats,
            "flowStats" => exports::flow_stats,
            "pollEvents" => events::poll_events,
            "onEvents" => events::on_events,
            "startNfqueue" => exports::start_nfqueue,
            "stop" => exports::stop,
            "sweep" => exports::sweep,
            "probe" => exports::probe,
            "winDivertFilters" => windows::windivert_filters,
            "checkWinDivert" => windows::check_windivert,
            "startWinDivert" => windows::start_windivert,
            "dpapiProtect" => windows::dpapi_protect,
            "dpapiUnprotect" => windows::dpapi_unprotect,
            "hkdfSha256" => crypto::hkdf_sha256,
            "hmacSha256" => crypto::hmac_sha256,
        };
        let js = Js(env);
        for (name, f) in fns.iter() {
            let mut v = std::ptr::null_mut();
            napi_create_function(env, name.as_ptr() as *const c_char, name.len(), *f, std::ptr::null_mut(), &mut v);
            js.set(exports, name, v);
        }
        js.set(exports, "abiVersion", js.num(1.0));
        js.set(exports, "eventTypes", events::event_types(&js));
    });
    let _ = r;
    exports
}
