//! What a JavaScript engine handle (an External) points to: the host (engine and shared state)
//! and the backend, if one runs. The instance owns both; the backend's threads hold only the host.

use super::convert::{terr, Js, R};
use super::ffi::*;
use crate::backend::Backend;
use crate::host::Host;
use crate::lock::lock;
use std::os::raw::c_void;
use std::sync::{Arc, Mutex};

pub struct Instance {
    pub host: Arc<Host>,
    pub backend: Mutex<Option<Arc<dyn Backend>>>,
}

impl Instance {
    /// Wraps a new instance in an External that owns it (freed by `finalize`).
    pub fn into_js(self, js: &Js) -> Value {
        let raw = Arc::into_raw(Arc::new(self)) as *mut c_void;
        let mut v = std::ptr::null_mut();
        unsafe { napi_create_external(js.0, raw, finalize, std::ptr::null_mut(), &mut v) };
        v
    }

    /// The instance behind an engine handle (one more strong count, for the call).
    pub fn of(js: &Js, v: Value) -> R<Arc<Instance>> {
        if js.ty(v) != T_EXTERNAL {
            return terr("the first argument must be an engine handle");
        }
        let mut p: *mut c_void = std::ptr::null_mut();
        unsafe { napi_get_value_external(js.0, v, &mut p) };
        if p.is_null() {
            return terr("invalid engine handle");
        }
        // The External owns one strong count; take another for the duration of the call.
        unsafe {
            Arc::increment_strong_count(p as *const Instance);
            Ok(Arc::from_raw(p as *const Instance))
        }
    }

    pub fn backend(&self) -> Option<Arc<dyn Backend>> {
        lock(&self.backend).clone()
    }

    /// After a call that may have released packets or queued events: carries them out.
    pub fn after(&self) {
        let p = self.host.pending();
        self.host.deliver(p, self.backend().as_deref());
    }

    /// Stops the backend, if one runs (packets it still holds are dropped: fail closed).
    pub fn stop(&self) {
        let be = lock(&self.backend).take();
        if let Some(b) = be {
            b.stop();
        }
    }
}

unsafe extern "C" fn finalize(_env: Env, data: *mut c_void, _hint: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        let inst: Arc<Instance> = Arc::from_raw(data as *const Instance);
        inst.stop();
        *lock(&inst.host.notify) = None;
        drop(inst);
    });
}
