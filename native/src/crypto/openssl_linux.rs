//! AES-128-CTR, HMAC-SHA256 and HKDF-SHA256 from OpenSSL's libcrypto (EVP, HMAC and EVP_KDF
//! APIs), declared by hand. Linux (and any Unix with libcrypto); the portable front is crypto.rs.

use std::os::raw::{c_char, c_int, c_uint, c_void};
#[allow(non_camel_case_types)]
type EVP_CIPHER_CTX = c_void;
#[allow(non_camel_case_types)]
type EVP_CIPHER = c_void;
#[allow(non_camel_case_types)]
type EVP_MD = c_void;
#[allow(non_camel_case_types)]
type HMAC_CTX = c_void;
#[allow(non_camel_case_types)]
type EVP_KDF = c_void;
#[allow(non_camel_case_types)]
type EVP_KDF_CTX = c_void;

/// OpenSSL 3's `OSSL_PARAM` (include/openssl/core.h).
#[repr(C)]
struct OsslParam {
    key: *const c_char,
    data_type: c_uint,
    data: *mut c_void,
    data_size: usize,
    return_size: usize,
}
const OSSL_PARAM_UTF8_STRING: c_uint = 4;
const OSSL_PARAM_OCTET_STRING: c_uint = 5;
const OSSL_PARAM_UNMODIFIED: usize = usize::MAX;

impl OsslParam {
    fn octets(key: &'static [u8], d: &[u8]) -> OsslParam {
        OsslParam { key: key.as_ptr() as *const c_char, data_type: OSSL_PARAM_OCTET_STRING, data: d.as_ptr() as *mut c_void, data_size: d.len(), return_size: OSSL_PARAM_UNMODIFIED }
    }
    /// `s` is NUL-terminated; its size excludes the NUL (as OSSL_PARAM_construct_utf8_string does).
    fn utf8(key: &'static [u8], s: &'static [u8]) -> OsslParam {
        OsslParam { key: key.as_ptr() as *const c_char, data_type: OSSL_PARAM_UTF8_STRING, data: s.as_ptr() as *mut c_void, data_size: s.len() - 1, return_size: OSSL_PARAM_UNMODIFIED }
    }
    fn end() -> OsslParam {
        OsslParam { key: std::ptr::null(), data_type: 0, data: std::ptr::null_mut(), data_size: 0, return_size: 0 }
    }
}

extern "C" {
    fn EVP_CIPHER_CTX_new() -> *mut EVP_CIPHER_CTX;
    fn EVP_CIPHER_CTX_free(c: *mut EVP_CIPHER_CTX);
    fn EVP_aes_128_ctr() -> *const EVP_CIPHER;
    fn EVP_EncryptInit_ex(c: *mut EVP_CIPHER_CTX, t: *const EVP_CIPHER, e: *mut c_void, key: *const u8, iv: *const u8) -> c_int;
    fn EVP_EncryptUpdate(c: *mut EVP_CIPHER_CTX, out: *mut u8, outl: *mut c_int, inp: *const u8, inl: c_int) -> c_int;
    fn EVP_MD_fetch(libctx: *mut c_void, algorithm: *const c_char, properties: *const c_char) -> *mut EVP_MD;
    fn EVP_MD_free(md: *mut EVP_MD);
    fn HMAC_CTX_new() -> *mut HMAC_CTX;
    fn HMAC_CTX_free(c: *mut HMAC_CTX);
    fn HMAC_Init_ex(c: *mut HMAC_CTX, key: *const c_void, len: c_int, md: *const EVP_MD, e: *mut c_void) -> c_int;
    fn HMAC_Update(c: *mut HMAC_CTX, data: *const u8, len: usize) -> c_int;
    fn HMAC_Final(c: *mut HMAC_CTX, md: *mut u8, len: *mut c_uint) -> c_int;
    fn EVP_KDF_fetch(libctx: *mut c_void, algorithm: *const c_char, properties: *const c_char) -> *mut EVP_KDF;
    fn EVP_KDF_free(kdf: *mut EVP_KDF);
    fn EVP_KDF_CTX_new(kdf: *mut EVP_KDF) -> *mut EVP_KDF_CTX;
    fn EVP_KDF_CTX_free(c: *mut EVP_KDF_CTX);
    fn EVP_KDF_CTX_set_params(c: *mut EVP_KDF_CTX, params: *const OsslParam) -> c_int;
    fn EVP_KDF_derive(c: *mut EVP_KDF_CTX, key: *mut u8, keylen: usize, params: *const OsslParam) -> c_int;
}

pub struct AesCtr {
    ctx: *mut EVP_CIPHER_CTX,
}
// The context is only used through &mut self.
unsafe impl Send for AesCtr {}

impl AesCtr {
    pub fn new(key: &[u8; 16]) -> Result<AesCtr, &'static str> {
        unsafe {
            let ctx = EVP_CIPHER_CTX_new();
            if ctx.is_null() {
                return Err("EVP_CIPHER_CTX_new failed");
            }
            let zero = [0u8; 16];
            if EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), std::ptr::null_mut(), key.as_ptr(), zero.as_ptr()) != 1 {
                EVP_CIPHER_CTX_free(ctx);
                return Err("EVP_EncryptInit_ex failed");
            }
            Ok(AesCtr { ctx })
        }
    }

    /// Re-keys the context (the key schedule only: AES-NI makes it tens of nanoseconds).
    pub fn set_key(&mut self, key: &[u8; 16]) -> bool {
        unsafe { EVP_EncryptInit_ex(self.ctx, std::ptr::null(), std::ptr::null_mut(), key.as_ptr(), std::ptr::null()) == 1 }
    }

    /// Raw CTR with an explicit 16-byte initial counter block (for known-answer tests).
    pub fn apply_iv(&mut self, iv: &[u8; 16], skip: usize, data: &mut [u8]) -> bool {
        unsafe {
            if EVP_EncryptInit_ex(self.ctx, std::ptr::null(), std::ptr::null_mut(), std::ptr::null(), iv.as_ptr()) != 1 {
                return false;
            }
            let mut outl: c_int = 0;
            if skip > 0 {
                let mut dummy = [0u8; 16];
                let p = dummy.as_mut_ptr();
                if EVP_EncryptUpdate(self.ctx, p, &mut outl, p, (skip % 16) as c_int) != 1 {
                    return false;
                }
            }
            let mut done = 0usize;
            while done < data.len() {
                let n = std::cmp::min(data.len() - done, 1 << 30);
                let p = data.as_mut_ptr().add(done);
                if EVP_EncryptUpdate(self.ctx, p, &mut outl, p, n as c_int) != 1 {
                    return false;
                }
                done += n;
            }
            true
        }
    }
}

impl Drop for AesCtr {
    fn drop(&mut self) {
        unsafe { EVP_CIPHER_CTX_free(self.ctx) }
    }
}

pub struct Hmac {
    ctx: *mut HMAC_CTX,
    /// SHA-256 fetched once (OpenSSL 3): re-keying with it skips the implicit fetch that
    /// `EVP_sha256()` costs at every digest initialisation (a re-key was ~8x a 64-byte MAC).
    md: *mut EVP_MD,
    fresh: bool,
}
unsafe impl Send for Hmac {}

impl Hmac {
    pub fn new(key: &[u8]) -> Result<Hmac, &'static str> {
        unsafe {
            let md = EVP_MD_fetch(std::ptr::null_mut(), b"SHA256\0".as_ptr() as *const c_char, std::ptr::null());
            if md.is_null() {
                return Err("EVP_MD_fetch(SHA256) failed");
            }
            let ctx = HMAC_CTX_new();
            if ctx.is_null() {
                EVP_MD_free(md);
                return Err("HMAC_CTX_new failed");
            }
            let mut h = Hmac { ctx, md, fresh: false };
            if HMAC_Init_ex(ctx, key.as_ptr() as *const c_void, key.len() as c_int, md, std::ptr::null_mut()) != 1 {
                return Err("HMAC_Init_ex failed"); // h's Drop frees both
            }
            h.fresh = true;
            Ok(h)
        }
    }
    /// Re-keys the context; the next begin() starts a MAC under `key`.
    pub fn set_key(&mut self, key: &[u8]) -> bool {
        let ok = unsafe { HMAC_Init_ex(self.ctx, key.as_ptr() as *const c_void, key.len() as c_int, self.md, std::ptr::null_mut()) == 1 };
        self.fresh = ok;
        ok
    }
    pub fn begin(&mut self) -> bool {
        if self.fresh {
            self.fresh = false;
            return true;
        }
        unsafe { HMAC_Init_ex(self.ctx, std::ptr::null(), 0, std::ptr::null(), std::ptr::null_mut()) == 1 }
    }
    pub fn update(&mut self, d: &[u8]) -> bool {
        unsafe { HMAC_Update(self.ctx, d.as_ptr(), d.len()) == 1 }
    }
    pub fn finish(&mut self, out: &mut [u8; 32]) -> bool {
        let mut l: c_uint = 32;
        unsafe { HMAC_Final(self.ctx, out.as_mut_ptr(), &mut l) == 1 && l == 32 }
    }
}

impl Drop for Hmac {
    fn drop(&mut self) {
        unsafe {
            HMAC_CTX_free(self.ctx);
            EVP_MD_free(self.md);
        }
    }
}

/// HKDF-SHA256 (RFC 5869) by OpenSSL 3's own KDF: "HKDF" fetched once, one context with its
/// digest set once, reused for every derivation (each call sets mode, key, salt and info, so
/// nothing of a previous call is left in it). Several outputs under one IKM and salt share one
/// Extract: the PRK is extracted once (EXTRACT_ONLY), then each info is expanded (EXPAND_ONLY).
pub struct Hkdf {
    kdf: *mut EVP_KDF,
    ctx: *mut EVP_KDF_CTX,
}
unsafe impl Send for Hkdf {}

const P_MODE: &[u8] = b"mode\0";
const P_KEY: &[u8] = b"key\0";
const P_SALT: &[u8] = b"salt\0";
const P_INFO: &[u8] = b"info\0";

impl Hkdf {
    pub fn new() -> Result<Hkdf, &'static str> {
        unsafe {
            let kdf = EVP_KDF_fetch(std::ptr::null_mut(), b"HKDF\0".as_ptr() as *const c_char, std::ptr::null());
            if kdf.is_null() {
                return Err("EVP_KDF_fetch(HKDF) failed");
            }
            let ctx = EVP_KDF_CTX_new(kdf);
            if ctx.is_null() {
                EVP_KDF_free(kdf);
                return Err("EVP_KDF_CTX_new failed");
            }
            let h = Hkdf { kdf, ctx };
            let params = [OsslParam::utf8(b"digest\0", b"SHA256\0"), OsslParam::end()];
            if EVP_KDF_CTX_set_params(ctx, params.as_ptr()) != 1 {
                return Err("EVP_KDF_CTX_set_params(digest SHA256) failed"); // h's Drop frees both
            }
            Ok(h)
        }
    }

    /// HKDF-Extract: the 32-byte PRK of `ikm` under `salt`. An empty salt is the hash length of
    /// zeros (RFC 5869 §2.2), passed as such so that no earlier salt is left in the context.
    pub fn extract(&mut self, ikm: &[u8], salt: &[u8], prk: &mut [u8; 32]) -> bool {
        if ikm.is_empty() {
            return false; // OpenSSL refuses a missing key; GSRA never derives from nothing
        }
        let zeros = [0u8; 32];
        let salt = if salt.is_empty() { &zeros[..] } else { salt };
        let params = [OsslParam::utf8(P_MODE, b"EXTRACT_ONLY\0"), OsslParam::octets(P_KEY, ikm), OsslParam::octets(P_SALT, salt), OsslParam::end()];
        unsafe { EVP_KDF_derive(self.ctx, prk.as_mut_ptr(), 32, params.as_ptr()) == 1 }
    }

    /// HKDF-Expand: `out.len()` bytes (at most 255 × 32) of `prk` and `info`.
    pub fn expand(&mut self, prk: &[u8; 32], info: &[u8], out: &mut [u8]) -> bool {
        // An empty info is refused rather than trusted to clear the previous one in every OpenSSL
        // 3.x (GSRA's infos always carry a label).
        if info.is_empty() || out.is_empty() || out.len() > 255 * 32 {
            return false;
        }
        let params = [OsslParam::utf8(P_MODE, b"EXPAND_ONLY\0"), OsslParam::octets(P_KEY, prk), OsslParam::octets(P_INFO, info), OsslParam::end()];
        unsafe { EVP_KDF_derive(self.ctx, out.as_mut_ptr(), out.len(), params.as_ptr()) == 1 }
    }
}

impl Drop for Hkdf {
    fn drop(&mut self) {
        unsafe {
            EVP_KDF_CTX_free(self.ctx);
            EVP_KDF_free(self.kdf);
        }
    }
}
