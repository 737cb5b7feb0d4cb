//! AES-128-CTR and HMAC-SHA256 from Windows CNG (bcrypt.dll), declared by hand: AES in ECB mode
//! produces the counter-block keystream; HMAC-SHA256 with a reusable hash object. Compiled by
//! CI's `cargo check --target x86_64-pc-windows-gnu`; run-time tests of this path belong to the
//! Windows backend issue. The portable front is crypto.rs.
use std::os::raw::{c_ulong, c_void};
type Handle = *mut c_void;
type NtStatus = i32;
#[link(name = "bcrypt")]
extern "system" {
    fn BCryptOpenAlgorithmProvider(h: *mut Handle, alg: *const u16, imp: *const u16, flags: c_ulong) -> NtStatus;
    fn BCryptCloseAlgorithmProvider(h: Handle, flags: c_ulong) -> NtStatus;
    fn BCryptSetProperty(h: Handle, prop: *const u16, input: *const u8, len: c_ulong, flags: c_ulong) -> NtStatus;
    fn BCryptGenerateSymmetricKey(h: Handle, key: *mut Handle, obj: *mut u8, objlen: c_ulong, secret: *const u8, len: c_ulong, flags: c_ulong) -> NtStatus;
    fn BCryptDestroyKey(k: Handle) -> NtStatus;
    fn BCryptEncrypt(k: Handle, input: *const u8, inlen: c_ulong, pad: *mut c_void, iv: *mut u8, ivlen: c_ulong, out: *mut u8, outlen: c_ulong, result: *mut c_ulong, flags: c_ulong) -> NtStatus;
    fn BCryptCreateHash(h: Handle, hash: *mut Handle, obj: *mut u8, objlen: c_ulong, secret: *const u8, len: c_ulong, flags: c_ulong) -> NtStatus;
    fn BCryptHashData(hash: Handle, input: *const u8, len: c_ulong, flags: c_ulong) -> NtStatus;
    fn BCryptFinishHash(hash: Handle, out: *mut u8, len: c_ulong, flags: c_ulong) -> NtStatus;
    fn BCryptDestroyHash(hash: Handle) -> NtStatus;
}
const BCRYPT_ALG_HANDLE_HMAC_FLAG: c_ulong = 0x8;
const BCRYPT_HASH_REUSABLE_FLAG: c_ulong = 0x20;

fn w(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

pub struct AesCtr {
    alg: Handle,
    key: Handle,
}
unsafe impl Send for AesCtr {}

impl AesCtr {
    pub fn new(key: &[u8; 16]) -> Result<AesCtr, &'static str> {
        unsafe {
            let mut alg: Handle = std::ptr::null_mut();
            if BCryptOpenAlgorithmProvider(&mut alg, w("AES").as_ptr(), std::ptr::null(), 0) < 0 {
                return Err("BCryptOpenAlgorithmProvider(AES) failed");
            }
            let mode = w("ChainingModeECB");
            if BCryptSetProperty(alg, w("ChainingMode").as_ptr(), mode.as_ptr() as *const u8, (mode.len() * 2) as c_ulong, 0) < 0 {
                BCryptCloseAlgorithmProvider(alg, 0);
                return Err("BCryptSetProperty(ChainingMode) failed");
            }
            let mut k: Handle = std::ptr::null_mut();
            if BCryptGenerateSymmetricKey(alg, &mut k, std::ptr::null_mut(), 0, key.as_ptr(), 16, 0) < 0 {
                BCryptCloseAlgorithmProvider(alg, 0);
                return Err("BCryptGenerateSymmetricKey failed");
            }
            Ok(AesCtr { alg, key: k })
        }
    }
    /// Re-keys: a new key object from the provider opened once.
    pub fn set_key(&mut self, key: &[u8; 16]) -> bool {
        unsafe {
            let mut k: Handle = std::ptr::null_mut();
            if BCryptGenerateSymmetricKey(self.alg, &mut k, std::ptr::null_mut(), 0, key.as_ptr(), 16, 0) < 0 {
                return false;
            }
            BCryptDestroyKey(self.key);
            self.key = k;
            true
        }
    }
    pub fn apply_iv(&mut self, iv: &[u8; 16], skip: usize, data: &mut [u8]) -> bool {
        let mut ctr = u128::from_be_bytes(*iv);
        let mut blocks = [0u8; 512];
        let mut ks = [0u8; 512];
        let mut pos = 0usize;
        let mut skip = skip % 16;
        while pos < data.len() {
            let need = data.len() - pos + skip;
            let nblk = std::cmp::min((need + 15) / 16, 32);
            for i in 0..nblk {
                blocks[i * 16..i * 16 + 16].copy_from_slice(&ctr.to_be_bytes());
                ctr = ctr.wrapping_add(1);
            }
            let mut got: c_ulong = 0;
            let n = (nblk * 16) as c_ulong;
            let rc = unsafe { BCryptEncrypt(self.key, blocks.as_ptr(), n, std::ptr::null_mut(), std::ptr::null_mut(), 0, ks.as_mut_ptr(), n, &mut got, 0) };
            if rc < 0 || got != n {
                return false;
            }
            let avail = nblk * 16 - skip;
            let take = std::cmp::min(avail, data.len() - pos);
            for i in 0..take {
                data[pos + i] ^= ks[skip + i];
            }
            pos += take;
            skip = 0;
        }
        true
    }
}
impl Drop for AesCtr {
    fn drop(&mut self) {
        unsafe {
            BCryptDestroyKey(self.key);
            BCryptCloseAlgorithmProvider(self.alg, 0);
        }
    }
}

pub struct Hmac {
    alg: Handle,
    hash: Handle,
}
unsafe impl Send for Hmac {}
impl Hmac {
    pub fn new(key: &[u8]) -> Result<Hmac, &'static str> {
        unsafe {
            let mut alg: Handle = std::ptr::null_mut();
            if BCryptOpenAlgorithmProvider(&mut alg, w("SHA256").as_ptr(), std::ptr::null(), BCRYPT_ALG_HANDLE_HMAC_FLAG) < 0 {
                return Err("BCryptOpenAlgorithmProvider(SHA256) failed");
            }
            let mut h: Handle = std::ptr::null_mut();
            if BCryptCreateHash(alg, &mut h, std::ptr::null_mut(), 0, key.as_ptr(), key.len() as c_ulong, BCRYPT_HASH_REUSABLE_FLAG) < 0 {
                BCryptCloseAlgorithmProvider(alg, 0);
                return Err("BCryptCreateHash failed");
            }
            Ok(Hmac { alg, hash: h })
        }
    }
    /// Re-keys: a new reusable hash object under `key`, from the provider opened once.
    pub fn set_key(&mut self, key: &[u8]) -> bool {
        unsafe {
            let mut h: Handle = std::ptr::null_mut();
            if BCryptCreateHash(self.alg, &mut h, std::ptr::null_mut(), 0, key.as_ptr(), key.len() as c_ulong, BCRYPT_HASH_REUSABLE_FLAG) < 0 {
                return false;
            }
            BCryptDestroyHash(self.hash);
            self.hash = h;
            true
        }
    }
    pub fn begin(&mut self) -> bool {
        true
    }
    pub fn update(&mut self, d: &[u8]) -> bool {
        unsafe { BCryptHashData(self.hash, d.as_ptr(), d.len() as c_ulong, 0) >= 0 }
    }
    pub fn finish(&mut self, out: &mut [u8; 32]) -> bool {
        unsafe { BCryptFinishHash(self.hash, out.as_mut_ptr(), 32, 0) >= 0 }
    }
}
impl Drop for Hmac {
    fn drop(&mut self) {
        unsafe {
            BCryptDestroyHash(self.hash);
            BCryptCloseAlgorithmProvider(self.alg, 0);
        }
    }
}
