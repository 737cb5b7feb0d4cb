//! The N-API surface, declared by hand against node's exported symbols (the .node is a cdylib;
//! on Linux the napi_* symbols stay undefined and node provides them at load time).
//! Every entry point catches panics; wrong argument types throw TypeError.

#![allow(clippy::missing_safety_doc)]

use crate::backend::{self, lock, now_ms, BackendConfig, QueueSpec, Shared};
use crate::engine::{Config, Engine, Event, FailMode, FlowSpec, Hook, PuntRule, Role, Verdict};
use crate::pccom::DirKeys;
use crate::pkt::{ip_to_string, parse_ipv4_str, PROTO_TCP, PROTO_UDP};
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::Ordering;
use std::sync::Arc;

type Env = *mut c_void;
type Value = *mut c_void;
type CbInfo = *mut c_void;
type Status = c_int;
type Callback = unsafe extern "C" fn(Env, CbInfo) -> Value;
type Finalize = unsafe extern "C" fn(Env, *mut c_void, *mut c_void);
type CallJs = unsafe extern "C" fn(Env, Value, *mut c_void, *mut c_void);
type Tsfn = *mut c_void;

extern "C" {
    fn napi_create_function(env: Env, name: *const c_char, len: usize, cb: Callback, data: *mut c_void, result: *mut Value) -> Status;
    fn napi_set_named_property(env: Env, obj: Value, name: *const c_char, v: Value) -> Status;
    fn napi_get_named_property(env: Env, obj: Value, name: *const c_char, result: *mut Value) -> Status;
    fn napi_get_cb_info(env: Env, info: CbInfo, argc: *mut usize, argv: *mut Value, this: *mut Value, data: *mut *mut c_void) -> Status;
    fn napi_typeof(env: Env, v: Value, result: *mut c_int) -> Status;
    fn napi_get_value_double(env: Env, v: Value, result: *mut f64) -> Status;
    fn napi_get_value_bool(env: Env, v: Value, result: *mut bool) -> Status;
    fn napi_get_value_string_utf8(env: Env, v: Value, buf: *mut c_char, size: usize, result: *mut usize) -> Status;
    fn napi_is_typedarray(env: Env, v: Value, result: *mut bool) -> Status;
    fn napi_get_typedarray_info(env: Env, v: Value, ty: *mut c_int, len: *mut usize, data: *mut *mut c_void, ab: *mut Value, off: *mut usize) -> Status;
    fn napi_is_array(env: Env, v: Value, result: *mut bool) -> Status;
    fn napi_get_array_length(env: Env, v: Value, result: *mut u32) -> Status;
    fn napi_get_element(env: Env, v: Value, i: u32, result: *mut Value) -> Status;
    fn napi_set_element(env: Env, v: Value, i: u32, e: Value) -> Status;
    fn napi_create_array_with_length(env: Env, len: usize, result: *mut Value) -> Status;
    fn napi_create_object(env: Env, result: *mut Value) -> Status;
    fn napi_create_double(env: Env, v: f64, result: *mut Value) -> Status;
    fn napi_create_string_utf8(env: Env, s: *const c_char, len: usize, result: *mut Value) -> Status;
    fn napi_get_boolean(env: Env, v: bool, result: *mut Value) -> Status;
    fn napi_get_undefined(env: Env, result: *mut Value) -> Status;
    fn napi_get_null(env: Env, result: *mut Value) -> Status;
    fn napi_create_buffer_copy(env: Env, len: usize, data: *const c_void, rdata: *mut *mut c_void, result: *mut Value) -> Status;
    fn napi_create_external(env: Env, data: *mut c_void, fin: Finalize, hint: *mut c_void, result: *mut Value) -> Status;
    fn napi_get_value_external(env: Env, v: Value, result: *mut *mut c_void) -> Status;
    fn napi_throw_type_error(env: Env, code: *const c_char, msg: *const c_char) -> Status;
    fn napi_throw_error(env: Env, code: *const c_char, msg: *const c_char) -> Status;
    fn napi_is_exception_pending(env: Env, result: *mut bool) -> Status;
    fn napi_call_function(env: Env, recv: Value, f: Value, argc: usize, argv: *const Value, result: *mut Value) -> Status;
    fn napi_create_threadsafe_function(
        env: Env,
        func: Value,
        res: Value,
        res_name: Value,
        max_queue: usize,
        threads: usize,
        fin_data: *mut c_void,
        fin: Option<Finalize>,
        ctx: *mut c_void,
        call_js: CallJs,
        result: *mut Tsfn,
    ) -> Status;
    fn napi_call_threadsafe_function(f: Tsfn, data: *mut c_void, blocking: c_int) -> Status;
    fn napi_unref_threadsafe_function(env: Env, f: Tsfn) -> Status;
}

const T_UNDEFINED: c_int = 0;
const T_NULL: c_int = 1;
const T_BOOLEAN: c_int = 2;
const T_NUMBER: c_int = 3;
const T_STRING: c_int = 4;
const T_OBJECT: c_int = 6;
const T_FUNCTION: c_int = 7;
const T_EXTERNAL: c_int = 8;

enum JsErr {
    Type(String),
    Error(String),
}

type R<T> = Result<T, JsErr>;

fn terr<T>(m: impl Into<String>) -> R<T> {
    Err(JsErr::Type(m.into()))
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v: Vec<u8> = s.bytes().filter(|b| *b != 0).collect();
    v.push(0);
    v
}

struct Js(Env);

impl Js {
    fn ty(&self, v: Value) -> c_int {
        let mut t: c_int = -1;
        unsafe { napi_typeof(self.0, v, &mut t) };
        t
    }
    fn undefined(&self) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_get_undefined(self.0, &mut v) };
        v
    }
    fn null(&self) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_get_null(self.0, &mut v) };
        v
    }
    fn num(&self, n: f64) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_create_double(self.0, n, &mut v) };
        v
    }
    fn boolean(&self, b: bool) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_get_boolean(self.0, b, &mut v) };
        v
    }
    fn string(&self, s: &str) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_create_string_utf8(self.0, s.as_ptr() as *const c_char, s.len(), &mut v) };
        v
    }
    fn buffer(&self, b: &[u8]) -> Value {
        let mut v = std::ptr::null_mut();
        let mut d = std::ptr::null_mut();
        unsafe { napi_create_buffer_copy(self.0, b.len(), b.as_ptr() as *const c_void, &mut d, &mut v) };
        v
    }
    fn object(&self) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_create_object(self.0, &mut v) };
        v
    }
    fn array(&self, n: usize) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_create_array_with_length(self.0, n, &mut v) };
        v
    }
    fn set(&self, o: Value, k: &str, v: Value) {
        let c = cstr(k);
        unsafe { napi_set_named_property(self.0, o, c.as_ptr() as *const c_char, v) };
    }
    fn push(&self, a: Value, i: usize, v: Value) {
        unsafe { napi_set_element(self.0, a, i as u32, v) };
    }
    fn get(&self, o: Value, k: &str) -> Value {
        let c = cstr(k);
        let mut v = std::ptr::null_mut();
        unsafe { napi_get_named_property(self.0, o, c.as_ptr() as *const c_char, &mut v) };
        v
    }
    fn is_nullish(&self, v: Value) -> bool {
        let t = self.ty(v);
        v.is_null() || t == T_UNDEFINED || t == T_NULL
    }
    fn get_obj(&self, v: Value, what: &str) -> R<Value> {
        if self.ty(v) != T_OBJECT {
            return terr(format!("{} must be an object", what));
        }
        Ok(v)
    }
    fn get_f64(&self, v: Value, what: &str) -> R<f64> {
        if self.ty(v) != T_NUMBER {
            return terr(format!("{} must be a number", what));
        }
        let mut n = 0f64;
        unsafe { napi_get_value_double(self.0, v, &mut n) };
        if !n.is_finite() {
            return terr(format!("{} must be a finite number", what));
        }
        Ok(n)
    }
    fn get_uint(&self, v: Value, what: &str, max: f64) -> R<u64> {
        let n = self.get_f64(v, what)?;
        if n < 0.0 || n > max || n.fract() != 0.0 {
            return terr(format!("{} must be an integer in 0..{}", what, max));
        }
        Ok(n as u64)
    }
    fn get_port(&self, v: Value, what: &str) -> R<u16> {
        Ok(self.get_uint(v, what, 65535.0)? as u16)
    }
    fn get_bool(&self, v: Value, what: &str) -> R<bool> {
        if self.ty(v) != T_BOOLEAN {
            return terr(format!("{} must be a boolean", what));
        }
        let mut b = false;
        unsafe { napi_get_value_bool(self.0, v, &mut b) };
        Ok(b)
    }
    fn get_string(&self, v: Value, what: &str) -> R<String> {
        if self.ty(v) != T_STRING {
            return terr(format!("{} must be a string", what));
        }
        let mut len = 0usize;
        unsafe { napi_get_value_string_utf8(self.0, v, std::ptr::null_mut(), 0, &mut len) };
        if len > 4096 {
            return terr(format!("{} is too long", what));
        }
        let mut buf = vec![0u8; len + 1];
        let mut got = 0usize;
        unsafe { napi_get_value_string_utf8(self.0, v, buf.as_mut_ptr() as *mut c_char, buf.len(), &mut got) };
        buf.truncate(got);
        String::from_utf8(buf).or_else(|_| terr(format!("{} is not valid UTF-8", what)))
    }
    fn get_ip(&self, v: Value, what: &str) -> R<u32> {
        let s = self.get_string(v, what)?;
        match parse_ipv4_str(&s) {
            Some(a) => Ok(a),
            None => terr(format!("{} must be a dotted IPv4 address", what)),
        }
    }
    /// Bytes of a Buffer / Uint8Array (borrowed: valid during this call only).
    fn get_bytes(&self, v: Value, what: &str) -> R<&'static [u8]> {
        let mut is = false;
        unsafe { napi_is_typedarray(self.0, v, &mut is) };
        if v.is_null() || !is {
            return terr(format!("{} must be a Buffer or Uint8Array", what));
        }
        let mut ty: c_int = -1;
        let mut len = 0usize;
        let mut data: *mut c_void = std::ptr::null_mut();
        let mut ab = std::ptr::null_mut();
        let mut off = 0usize;
        unsafe { napi_get_typedarray_info(self.0, v, &mut ty, &mut len, &mut data, &mut ab, &mut off) };
        if ty != 1 {
            return terr(format!("{} must be a Buffer or Uint8Array", what));
        }
        if len == 0 || data.is_null() {
            return Ok(&[]);
        }
        Ok(unsafe { std::slice::from_raw_parts(data as *const u8, len) })
    }
    /// Raw (pointer, length) of a Buffer / Uint8Array to write into (valid during this call only).
    fn get_bytes_mut(&self, v: Value, what: &str) -> R<(*mut u8, usize)> {
        let mut is = false;
        unsafe { napi_is_typedarray(self.0, v, &mut is) };
        if v.is_null() || !is {
            return terr(format!("{} must be a Buffer or Uint8Array", what));
        }
        let mut ty: c_int = -1;
        let mut len = 0usize;
        let mut data: *mut c_void = std::ptr::null_mut();
        let mut ab = std::ptr::null_mut();
        let mut off = 0usize;
        unsafe { napi_get_typedarray_info(self.0, v, &mut ty, &mut len, &mut data, &mut ab, &mut off) };
        if ty != 1 {
            return terr(format!("{} must be a Buffer or Uint8Array", what));
        }
        if data.is_null() {
            return Ok((std::ptr::null_mut(), 0));
        }
        Ok((data as *mut u8, len))
    }
    fn get_array(&self, v: Value, what: &str) -> R<Vec<Value>> {
        let mut is = false;
        unsafe { napi_is_array(self.0, v, &mut is) };
        if v.is_null() || !is {
            return terr(format!("{} must be an array", what));
        }
        let mut n = 0u32;
        unsafe { napi_get_array_length(self.0, v, &mut n) };
        if n > 65536 {
            return terr(format!("{} is too long", what));
        }
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let mut e = std::ptr::null_mut();
            unsafe { napi_get_element(self.0, v, i, &mut e) };
            out.push(e);
        }
        Ok(out)
    }
}

struct Handle(*const Shared);

unsafe extern "C" fn finalize_engine(_env: Env, data: *mut c_void, _hint: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        let sh: Arc<Shared> = Arc::from_raw(data as *const Shared);
        let be = lock(&sh.backend).take();
        if let Some(b) = be {
            b.stop();
        }
        *lock(&sh.notify) = None;
        drop(sh);
    });
}

fn shared_of(js: &Js, v: Value) -> R<Arc<Shared>> {
    if js.ty(v) != T_EXTERNAL {
        return terr("the first argument must be an engine handle");
    }
    let mut p: *mut c_void = std::ptr::null_mut();
    unsafe { napi_get_value_external(js.0, v, &mut p) };
    if p.is_null() {
        return terr("invalid engine handle");
    }
    let h = Handle(p as *const Shared);
    // The External owns one strong count; take another for the duration of the call.
    unsafe {
        Arc::increment_strong_count(h.0);
        Ok(Arc::from_raw(h.0))
    }
}

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

macro_rules! export {
    ($name:ident, $imp:ident) => {
        unsafe extern "C" fn $name(env: Env, info: CbInfo) -> Value {
            entry(env, info, $imp)
        }
    };
}

fn proto_of(js: &Js, v: Value) -> R<u8> {
    if js.ty(v) == T_NUMBER {
        return match js.get_uint(v, "proto", 255.0)? as u8 {
            PROTO_TCP => Ok(PROTO_TCP),
            PROTO_UDP => Ok(PROTO_UDP),
            _ => terr("proto must be 'tcp' (6) or 'udp' (17)"),
        };
    }
    match js.get_string(v, "proto")?.as_str() {
        "tcp" => Ok(PROTO_TCP),
        "udp" => Ok(PROTO_UDP),
        _ => terr("proto must be 'tcp' or 'udp'"),
    }
}

fn proto_name(p: u8) -> &'static str {
    match p {
        PROTO_TCP => "tcp",
        PROTO_UDP => "udp",
        1 => "icmp",
        _ => "other",
    }
}

fn hook_of(js: &Js, v: Value) -> R<Hook> {
    match js.get_string(v, "hook")?.as_str() {
        "out" => Ok(Hook::Out),
        "in" => Ok(Hook::In),
        _ => terr("hook must be 'out' or 'in'"),
    }
}

fn keys_of(js: &Js, v: Value, what: &str) -> R<DirKeys> {
    let o = js.get_obj(v, what)?;
    let enc = js.get_bytes(js.get(o, "encKey"), &format!("{}.encKey", what))?;
    let mac = js.get_bytes(js.get(o, "macKey"), &format!("{}.macKey", what))?;
    let salt = js.get_bytes(js.get(o, "ivSalt"), &format!("{}.ivSalt", what))?;
    if enc.len() != 16 {
        return terr(format!("{}.encKey must be 16 bytes", what));
    }
    if mac.len() != 32 {
        return terr(format!("{}.macKey must be 32 bytes", what));
    }
    if salt.len() != 8 {
        return terr(format!("{}.ivSalt must be 8 bytes", what));
    }
    let mut k = DirKeys { enc: [0; 16], mac: [0; 32], salt: [0; 8] };
    k.enc.copy_from_slice(enc);
    k.mac.copy_from_slice(mac);
    k.salt.copy_from_slice(salt);
    Ok(k)
}

fn opt<T>(js: &Js, o: Value, k: &str, f: impl Fn(Value) -> R<T>) -> R<Option<T>> {
    let v = js.get(o, k);
    if js.is_nullish(v) {
        Ok(None)
    } else {
        f(v).map(Some)
    }
}

// createEngine(opts)
fn create_engine(js: &Js, a: &[Value]) -> R<Value> {
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
        let max = 1e12;
        if let Some(v) = opt(js, t, "tcpHandshakeMs", |v| js.get_uint(v, "tcpHandshakeMs", max))? {
            tm.tcp_handshake = v;
        }
        if let Some(v) = opt(js, t, "tcpEstablishedMs", |v| js.get_uint(v, "tcpEstablishedMs", max))? {
            tm.tcp_established = v;
        }
        if let Some(v) = opt(js, t, "tcpClosingMs", |v| js.get_uint(v, "tcpClosingMs", max))? {
            tm.tcp_closing = v;
        }
        if let Some(v) = opt(js, t, "udpIdleMs", |v| js.get_uint(v, "udpIdleMs", max))? {
            tm.udp_idle = v;
        }
        if let Some(v) = opt(js, t, "reservationMs", |v| js.get_uint(v, "reservationMs", max))? {
            tm.reservation = v;
        }
        if let Some(v) = opt(js, t, "heldMs", |v| js.get_uint(v, "heldMs", max))? {
            tm.held = v;
        }
    }
    if let Some(v) = opt(js, o, "maxHeldPerFlow", |v| js.get_uint(v, "maxHeldPerFlow", 4096.0))? {
        cfg.max_held_per_flow = v as usize;
    }
    if let Some(v) = opt(js, o, "maxHeldTotal", |v| js.get_uint(v, "maxHeldTotal", 1e6))? {
        cfg.max_held_total = v as usize;
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
    let sh = Arc::new(Shared::new(Engine::new(cfg)));
    let raw = Arc::into_raw(sh) as *mut c_void;
    let mut v = std::ptr::null_mut();
    unsafe { napi_create_external(js.0, raw, finalize_engine, std::ptr::null_mut(), &mut v) };
    Ok(v)
}

fn after(sh: &Shared) {
    let (items, have) = {
        let mut e = lock(&sh.eng);
        (std::mem::take(&mut e.outbox), !e.events.is_empty())
    };
    sh.flush(items);
    sh.maybe_notify(have);
}

// addFlow(h, spec): agent VAT entry or gateway reservation (the role decides).
fn add_flow(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let o = js.get_obj(a[1], "spec")?;
    let role = lock(&sh.eng).cfg.role;
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
    let r = lock(&sh.eng).add_flow(&spec, now_ms());
    after(&sh);
    match r {
        Ok(()) => Ok(js.undefined()),
        Err(e) => Err(JsErr::Error(e)),
    }
}

// updateFlow(h, id, {tx?, rx?}) -> boolean
fn update_flow(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let id = js.get_uint(a[1], "id", u32::MAX as f64)? as u32;
    let o = js.get_obj(a[2], "update")?;
    let tx = opt(js, o, "tx", |v| keys_of(js, v, "update.tx"))?;
    let rx = opt(js, o, "rx", |v| keys_of(js, v, "update.rx"))?;
    let r = lock(&sh.eng).update_flow(id, tx.as_ref(), rx.as_ref());
    match r {
        Ok(b) => Ok(js.boolean(b)),
        Err(e) => Err(JsErr::Error(e)),
    }
}

fn remove_flow(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let id = js.get_uint(a[1], "id", u32::MAX as f64)? as u32;
    let r = lock(&sh.eng).remove_flow(id);
    Ok(js.boolean(r))
}

// process(h, packet, hook) -> {verdict, packet?, reason?, puntId?}
fn process(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let pkt = js.get_bytes(a[1], "packet")?;
    let hook = hook_of(js, a[2])?;
    if pkt.len() > 65535 {
        return terr("packet is longer than 65535 bytes");
    }
    let now = now_ms();
    let (v, out) = {
        let mut e = lock(&sh.eng);
        let r = e.process_copy(pkt, hook, now);
        e.sweep(now, 16);
        r
    };
    after(&sh);
    let o = js.object();
    match v {
        Verdict::Accept => {
            js.set(o, "verdict", js.string("accept"));
            js.set(o, "packet", js.buffer(&out));
        }
        Verdict::Drop(r) => {
            js.set(o, "verdict", js.string("drop"));
            js.set(o, "reason", js.string(r));
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
fn process_into(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let pkt = js.get_bytes(a[1], "packet")?;
    let hook = hook_of(js, a[2])?;
    let (out_ptr, out_len) = js.get_bytes_mut(a[3], "out")?;
    if pkt.len() > 65535 {
        return terr("packet is longer than 65535 bytes");
    }
    let now = now_ms();
    let r = {
        let mut e = lock(&sh.eng);
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
    after(&sh);
    let code: f64 = match r {
        Ok(n) => n as f64,
        Err(Verdict::Held) => -2.0,
        Err(Verdict::Punted(_)) => -3.0,
        Err(Verdict::Accept) => return Err(JsErr::Error("out is too small for the translated packet".into())),
        Err(Verdict::Drop(_)) => -1.0,
    };
    Ok(js.num(code))
}

fn take_released(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let items = std::mem::take(&mut *lock(&sh.released));
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
fn fail_held(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
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
    let n = lock(&sh.eng).fail_held(key, mode);
    after(&sh);
    Ok(js.num(n as f64))
}

// verdict(h, puntId, accept, replacement?) -> boolean
fn verdict(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let id = js.get_uint(a[1], "puntId", 9.0e15)?;
    let accept = js.get_bool(a[2], "accept")?;
    let rep = if js.is_nullish(a[3]) { None } else { Some(js.get_bytes(a[3], "replacement")?) };
    let r = lock(&sh.eng).punt_verdict(id, accept, rep, now_ms());
    after(&sh);
    match r {
        Ok(b) => Ok(js.boolean(b)),
        Err(e) => Err(JsErr::Error(e)),
    }
}

fn stats(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let o = js.object();
    {
        let e = lock(&sh.eng);
        let s = &e.stats;
        let fields: [(&str, u64); 26] = [
            ("packets", s.packets),
            ("translatedOut", s.translated_out),
            ("translatedIn", s.translated_in),
            ("acceptedPlain", s.accepted_plain),
            ("dropped", s.dropped),
            ("malformed", s.malformed),
            ("fragments", s.fragments),
            ("noFlow", s.no_flow),
            ("verifyFailed", s.verify_failed),
            ("replay", s.replay),
            ("wrongSource", s.wrong_source),
            ("portDenied", s.port_denied),
            ("noRoom", s.no_room),
            ("cryptoErrors", s.crypto_errors),
            ("held", s.held),
            ("heldReleased", s.held_released),
            ("heldFailed", s.held_failed),
            ("heldOverflow", s.held_overflow),
            ("heldExpired", s.held_expired),
            ("punted", s.punted),
            ("puntExpired", s.punt_expired),
            ("icmpTranslated", s.icmp_translated),
            ("bound", s.bound),
            ("expired", s.expired),
            ("eventsDropped", s.events_dropped),
            ("panics", s.panics),
        ];
        for (k, v) in fields.iter() {
            js.set(o, k, js.num(*v as f64));
        }
        js.set(o, "flows", js.num(e.flow_count() as f64));
        js.set(o, "heldNow", js.num(e.held_count() as f64));
    }
    let be = lock(&sh.backend).clone();
    match be {
        Some(b) => {
            let bo = js.object();
            js.set(bo, "name", js.string(b.name()));
            for (k, v) in b.counters() {
                js.set(bo, k, js.num(v as f64));
            }
            js.set(o, "backend", bo);
        }
        None => js.set(o, "backend", js.null()),
    }
    Ok(o)
}

fn flow_stats(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let id = js.get_uint(a[1], "id", u32::MAX as f64)? as u32;
    let e = lock(&sh.eng);
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
    js.set(o, "pktsOut", js.num(f.c.pkts_out as f64));
    js.set(o, "bytesOut", js.num(f.c.bytes_out as f64));
    js.set(o, "pktsIn", js.num(f.c.pkts_in as f64));
    js.set(o, "bytesIn", js.num(f.c.bytes_in as f64));
    js.set(o, "verifyFailed", js.num(f.c.verify_failed as f64));
    if e.cfg.role == Role::Gateway && f.bound {
        js.set(o, "ghr", js.string(&ip_to_string(f.ghr)));
        js.set(o, "m", js.num(f.m as f64));
    }
    Ok(o)
}

fn events_to_js(js: &Js, evs: &[Event]) -> Value {
    let arr = js.array(evs.len());
    for (i, e) in evs.iter().enumerate() {
        let o = js.object();
        match e {
            Event::Held { proto, src, sport, dst, dport } => {
                js.set(o, "type", js.string("held"));
                js.set(o, "proto", js.string(proto_name(*proto)));
                js.set(o, "src", js.string(&ip_to_string(*src)));
                js.set(o, "sport", js.num(*sport as f64));
                js.set(o, "dst", js.string(&ip_to_string(*dst)));
                js.set(o, "dport", js.num(*dport as f64));
            }
            Event::HeldExpired { proto, src, sport, dst, dport, count } => {
                js.set(o, "type", js.string("held-expired"));
                js.set(o, "proto", js.string(proto_name(*proto)));
                js.set(o, "src", js.string(&ip_to_string(*src)));
                js.set(o, "sport", js.num(*sport as f64));
                js.set(o, "dst", js.string(&ip_to_string(*dst)));
                js.set(o, "dport", js.num(*dport as f64));
                js.set(o, "count", js.num(*count as f64));
            }
            Event::Bound { id, proto, t, ghr, m, pin, d } => {
                js.set(o, "type", js.string("bound"));
                js.set(o, "id", js.num(*id as f64));
                js.set(o, "proto", js.string(proto_name(*proto)));
                js.set(o, "t", js.num(*t as f64));
                js.set(o, "ghr", js.string(&ip_to_string(*ghr)));
                js.set(o, "m", js.num(*m as f64));
                js.set(o, "pin", js.string(&ip_to_string(*pin)));
                js.set(o, "d", js.num(*d as f64));
            }
            Event::Expired { id, proto, t, state } => {
                js.set(o, "type", js.string("expired"));
                js.set(o, "id", js.num(*id as f64));
                js.set(o, "proto", js.string(proto_name(*proto)));
                js.set(o, "t", js.num(*t as f64));
                js.set(o, "state", js.string(state));
            }
            Event::VerifyFailed { id, proto, src, sport, dport, reason, count } => {
                js.set(o, "type", js.string("verify-failed"));
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
                js.set(o, "type", js.string("punt"));
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

fn poll_events(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let evs = std::mem::take(&mut lock(&sh.eng).events);
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
        let sh = &*(ctx as *const Shared);
        sh.notify_pending.store(false, Ordering::Release);
        let evs = std::mem::take(&mut lock(&sh.eng).events);
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
            drop(Arc::from_raw(data as *const Shared));
        }
    });
}

// onEvents(h, fn): events are delivered in batches on the JS thread.
fn on_events(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    if js.ty(a[1]) != T_FUNCTION {
        return terr("callback must be a function");
    }
    let name = js.string("gsra-engine-events");
    let ctx = Arc::into_raw(sh.clone()) as *mut c_void;
    let mut tsfn: Tsfn = std::ptr::null_mut();
    let st = unsafe { napi_create_threadsafe_function(js.0, a[1], std::ptr::null_mut(), name, 0, 1, ctx, Some(tsfn_finalize), ctx, call_js, &mut tsfn) };
    if st != 0 {
        unsafe { drop(Arc::from_raw(ctx as *const Shared)) };
        return Err(JsErr::Error("napi_create_threadsafe_function failed".into()));
    }
    unsafe { napi_unref_threadsafe_function(js.0, tsfn) };
    let b = TsfnBox(tsfn);
    let old = lock(&sh.notify).replace(Box::new(move || {
        let t = &b;
        unsafe { napi_call_threadsafe_function(t.0, std::ptr::null_mut(), 0) };
    }));
    drop(old);
    sh.notify_pending.store(false, Ordering::Release);
    let have = !lock(&sh.eng).events.is_empty();
    sh.maybe_notify(have);
    Ok(js.undefined())
}

// startNfqueue(h, {queues: [{num, hook}], maxLen?, batch?})
fn start_nfqueue(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let o = js.get_obj(a[1], "options")?;
    let mut queues = Vec::new();
    for q in js.get_array(js.get(o, "queues"), "options.queues")? {
        let q = js.get_obj(q, "queue")?;
        queues.push(QueueSpec { num: js.get_port(js.get(q, "num"), "queue.num")?, hook: hook_of(js, js.get(q, "hook"))? });
    }
    let max_len = opt(js, o, "maxLen", |v| js.get_uint(v, "maxLen", 1e6))?.unwrap_or(8192) as u32;
    let batch = opt(js, o, "batch", |v| js.get_uint(v, "batch", 256.0))?.unwrap_or(64) as usize;
    if lock(&sh.backend).is_some() {
        return Err(JsErr::Error("a backend is already running".into()));
    }
    match backend::start(sh.clone(), BackendConfig { queues, max_len, batch }) {
        Ok(_) => Ok(js.undefined()),
        Err(e) => {
            *lock(&sh.backend) = None;
            Err(JsErr::Error(e))
        }
    }
}

fn stop(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    let be = lock(&sh.backend).take();
    if let Some(b) = be {
        b.stop();
    }
    Ok(js.undefined())
}

fn sweep(js: &Js, a: &[Value]) -> R<Value> {
    let sh = shared_of(js, a[0])?;
    {
        let mut e = lock(&sh.eng);
        let n = e.flow_count() + 1;
        e.sweep(now_ms(), n);
    }
    after(&sh);
    Ok(js.undefined())
}

// benchLoop(payloadBytes, seconds) -> {packets, seconds}: the engine's own cost, no N-API per packet.
fn bench_loop(js: &Js, a: &[Value]) -> R<Value> {
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

export!(x_bench_loop, bench_loop);
export!(x_create_engine, create_engine);
export!(x_add_flow, add_flow);
export!(x_update_flow, update_flow);
export!(x_remove_flow, remove_flow);
export!(x_process, process);
export!(x_take_released, take_released);
export!(x_process_into, process_into);
export!(x_fail_held, fail_held);
export!(x_verdict, verdict);
export!(x_stats, stats);
export!(x_flow_stats, flow_stats);
export!(x_poll_events, poll_events);
export!(x_on_events, on_events);
export!(x_start_nfqueue, start_nfqueue);
export!(x_stop, stop);
export!(x_sweep, sweep);

#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: Env, exports: Value) -> Value {
    let r = std::panic::catch_unwind(|| {
        let fns: [(&str, Callback); 17] = [
            ("processInto", x_process_into),
            ("benchLoop", x_bench_loop),
            ("createEngine", x_create_engine),
            ("addFlow", x_add_flow),
            ("updateFlow", x_update_flow),
            ("removeFlow", x_remove_flow),
            ("process", x_process),
            ("takeReleased", x_take_released),
            ("failHeld", x_fail_held),
            ("verdict", x_verdict),
            ("stats", x_stats),
            ("flowStats", x_flow_stats),
            ("pollEvents", x_poll_events),
            ("onEvents", x_on_events),
            ("startNfqueue", x_start_nfqueue),
            ("stop", x_stop),
            ("sweep", x_sweep),
        ];
        let js = Js(env);
        for (name, f) in fns.iter() {
            let mut v = std::ptr::null_mut();
            napi_create_function(env, name.as_ptr() as *const c_char, name.len(), *f, std::ptr::null_mut(), &mut v);
            js.set(exports, name, v);
        }
        js.set(exports, "abiVersion", js.num(1.0));
    });
    let _ = r;
    exports
}
