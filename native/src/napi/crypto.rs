//! N-API exports of the control protocol's keyed hashes (common/src/protocol/openssl.ts calls
//! them on Linux; on Windows the protocol uses node:crypto):
//!
//!   hkdfSha256(ikm, salt, infos, infoLen, outLen) -> Buffer
//!     HKDF-SHA256 by OpenSSL's KDF (crypto::hkdf_sha256); infos: infos.length / infoLen infos of
//!     infoLen bytes each, one after the other; the result: one output of outLen bytes per info,
//!     in the same order (the flow keys of a whole RESERVE cross N-API once). Linux only: on
//!     Windows it throws a sentence (wine 8's bcrypt has no CNG HKDF to test a twin against).
//!   hmacSha256(key, data) -> Buffer(32)
//!     HMAC-SHA256 by the thread's keyed library contexts (crypto::hmac_sha256: OpenSSL, CNG).

#[cfg(not(windows))]
use super::convert::terr;
use super::convert::{Js, JsErr, R};
use super::ffi::Value;

/// Longest output per info (RFC 5869: 255 hash blocks).
#[cfg(not(windows))]
const OUT_MAX: f64 = 255.0 * 32.0;

#[cfg(not(windows))]
pub(super) fn hkdf_sha256(js: &Js, a: &[Value]) -> R<Value> {
    let ikm = js.get_bytes(a[0], "ikm")?;
    let salt = js.get_bytes(a[1], "salt")?;
    let infos = js.get_bytes(a[2], "infos")?;
    let info_len = js.get_uint(a[3], "infoLen", 1024.0)? as usize;
    let out_len = js.get_uint(a[4], "outLen", OUT_MAX)? as usize;
    if ikm.is_empty() {
        return terr("ikm must not be empty");
    }
    if info_len == 0 || infos.is_empty() || infos.len() % info_len != 0 {
        return terr("infos must be one or more infos of infoLen (> 0) bytes each");
    }
    if out_len == 0 {
        return terr("outLen must be at least 1");
    }
    let mut out = vec![0u8; infos.len() / info_len * out_len];
    let ok = crate::crypto::hkdf_sha256(ikm, salt, infos, info_len, out_len, &mut out);
    let v = if ok { Some(js.buffer(&out)) } else { None };
    for b in out.iter_mut() {
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    v.ok_or_else(|| JsErr::Error("HKDF-SHA256 failed in OpenSSL".into()))
}

#[cfg(windows)]
pub(super) fn hkdf_sha256(_js: &Js, _a: &[Value]) -> R<Value> {
    Err(JsErr::Error("hkdfSha256 is not in the Windows build (node:crypto derives there)".into()))
}

pub(super) fn hmac_sha256(js: &Js, a: &[Value]) -> R<Value> {
    let key = js.get_bytes(a[0], "key")?;
    let data = js.get_bytes(a[1], "data")?;
    let mac = crate::crypto::hmac_sha256(key, &[data]).ok_or_else(|| JsErr::Error("HMAC-SHA256 failed in the crypto library".into()))?;
    Ok(js.buffer(&mac))
}
