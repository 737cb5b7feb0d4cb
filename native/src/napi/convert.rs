//! Conversion between JavaScript values and Rust: typed getters that throw `TypeError` on a wrong
//! type (never crash), value constructors, and the GSRA argument shapes (proto, hook, keys).

use super::ffi::*;
use crate::engine::{FlowCounters, Hook};
use crate::pccom::DirKeys;
use crate::pkt::{parse_ipv4_str, PROTO_TCP, PROTO_UDP};
use std::os::raw::{c_char, c_int, c_void};

pub enum JsErr {
    Type(String),
    Error(String),
}

pub type R<T> = Result<T, JsErr>;

pub fn terr<T>(m: impl Into<String>) -> R<T> {
    Err(JsErr::Type(m.into()))
}

pub fn cstr(s: &str) -> Vec<u8> {
    let mut v: Vec<u8> = s.bytes().filter(|b| *b != 0).collect();
    v.push(0);
    v
}

pub struct Js(pub Env);

impl Js {
    pub fn ty(&self, v: Value) -> c_int {
        let mut t: c_int = -1;
        unsafe { napi_typeof(self.0, v, &mut t) };
        t
    }
    pub fn undefined(&self) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_get_undefined(self.0, &mut v) };
        v
    }
    pub fn null(&self) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_get_null(self.0, &mut v) };
        v
    }
    pub fn num(&self, n: f64) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_create_double(self.0, n, &mut v) };
        v
    }
    pub fn boolean(&self, b: bool) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_get_boolean(self.0, b, &mut v) };
        v
    }
    pub fn string(&self, s: &str) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_create_string_utf8(self.0, s.as_ptr() as *const c_char, s.len(), &mut v) };
        v
    }
    pub fn buffer(&self, b: &[u8]) -> Value {
        let mut v = std::ptr::null_mut();
        let mut d = std::ptr::null_mut();
        unsafe { napi_create_buffer_copy(self.0, b.len(), b.as_ptr() as *const c_void, &mut d, &mut v) };
        v
    }
    pub fn object(&self) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_create_object(self.0, &mut v) };
        v
    }
    pub fn array(&self, n: usize) -> Value {
        let mut v = std::ptr::null_mut();
        unsafe { napi_create_array_with_length(self.0, n, &mut v) };
        v
    }
    pub fn set(&self, o: Value, k: &str, v: Value) {
        let c = cstr(k);
        unsafe { napi_set_named_property(self.0, o, c.as_ptr() as *const c_char, v) };
    }
    pub fn push(&self, a: Value, i: usize, v: Value) {
        unsafe { napi_set_element(self.0, a, i as u32, v) };
    }
    pub fn get(&self, o: Value, k: &str) -> Value {
        let c = cstr(k);
        let mut v = std::ptr::null_mut();
        unsafe { napi_get_named_property(self.0, o, c.as_ptr() as *const c_char, &mut v) };
        v
    }
    pub fn is_nullish(&self, v: Value) -> bool {
        let t = self.ty(v);
        v.is_null() || t == T_UNDEFINED || t == T_NULL
    }
    pub fn get_obj(&self, v: Value, what: &str) -> R<Value> {
        if self.ty(v) != T_OBJECT {
            return terr(format!("{} must be an object", what));
        }
        Ok(v)
    }
    pub fn get_f64(&self, v: Value, what: &str) -> R<f64> {
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
    pub fn get_uint(&self, v: Value, what: &str, max: f64) -> R<u64> {
        let n = self.get_f64(v, what)?;
        if n < 0.0 || n > max || n.fract() != 0.0 {
            return terr(format!("{} must be an integer in 0..{}", what, max));
        }
        Ok(n as u64)
    }
    pub fn get_port(&self, v: Value, what: &str) -> R<u16> {
        Ok(self.get_uint(v, what, 65535.0)? as u16)
    }
    pub fn get_bool(&self, v: Value, what: &str) -> R<bool> {
        if self.ty(v) != T_BOOLEAN {
            return terr(format!("{} must be a boolean", what));
        }
        let mut b = false;
        unsafe { napi_get_value_bool(self.0, v, &mut b) };
        Ok(b)
    }
    pub fn get_string(&self, v: Value, what: &str) -> R<String> {
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
    pub fn get_ip(&self, v: Value, what: &str) -> R<u32> {
        let s = self.get_string(v, what)?;
        match parse_ipv4_str(&s) {
            Some(a) => Ok(a),
            None => terr(format!("{} must be a dotted IPv4 address", what)),
        }
    }
    /// Raw (pointer, length) of a Buffer / Uint8Array (valid during this call only).
    fn typed_bytes(&self, v: Value, what: &str) -> R<(*mut u8, usize)> {
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
    /// Bytes of a Buffer / Uint8Array (borrowed: valid during this call only).
    pub fn get_bytes(&self, v: Value, what: &str) -> R<&'static [u8]> {
        let (p, len) = self.typed_bytes(v, what)?;
        if len == 0 || p.is_null() {
            return Ok(&[]);
        }
        Ok(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    }
    /// Raw (pointer, length) of a Buffer / Uint8Array to write into (valid during this call only).
    pub fn get_bytes_mut(&self, v: Value, what: &str) -> R<(*mut u8, usize)> {
        self.typed_bytes(v, what)
    }
    pub fn get_array(&self, v: Value, what: &str) -> R<Vec<Value>> {
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

pub fn proto_of(js: &Js, v: Value) -> R<u8> {
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

pub fn proto_name(p: u8) -> &'static str {
    match p {
        PROTO_TCP => "tcp",
        PROTO_UDP => "udp",
        1 => "icmp",
        _ => "other",
    }
}

/// A flow's counters as the fields of `o` (`flowStats()`, `expired` events).
pub fn set_counters(js: &Js, o: Value, c: &FlowCounters) {
    js.set(o, "pktsOut", js.num(c.pkts_out as f64));
    js.set(o, "bytesOut", js.num(c.bytes_out as f64));
    js.set(o, "payloadOut", js.num(c.payload_out as f64));
    js.set(o, "pktsIn", js.num(c.pkts_in as f64));
    js.set(o, "bytesIn", js.num(c.bytes_in as f64));
    js.set(o, "payloadIn", js.num(c.payload_in as f64));
    js.set(o, "verifyFailed", js.num(c.verify_failed as f64));
}

pub fn hook_of(js: &Js, v: Value) -> R<Hook> {
    match js.get_string(v, "hook")?.as_str() {
        "out" => Ok(Hook::Out),
        "in" => Ok(Hook::In),
        _ => terr("hook must be 'out' or 'in'"),
    }
}

pub fn keys_of(js: &Js, v: Value, what: &str) -> R<DirKeys> {
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

pub fn opt<T>(js: &Js, o: Value, k: &str, f: impl Fn(Value) -> R<T>) -> R<Option<T>> {
    let v = js.get(o, k);
    if js.is_nullish(v) {
        Ok(None)
    } else {
        f(v).map(Some)
    }
}
