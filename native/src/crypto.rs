//! Crypto primitives from the OS, through hand-declared FFI: OpenSSL libcrypto on Unix,
//! CNG (bcrypt.dll) on Windows. Nothing here implements AES or SHA-256 itself.
//!
//! `AesCtr` encrypts/decrypts in place with IV = salt(8) || be64(position / 16), skipping
//! position % 16 bytes of the first block. `Hmac` is HMAC-SHA256 with the key set once.

/// Constant-time comparison.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut d = 0u8;
    for i in 0..a.len() {
        d |= a[i] ^ b[i];
    }
    d == 0
}

pub fn iv_for(salt: &[u8; 8], position: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(salt);
    iv[8..].copy_from_slice(&(position / 16).to_be_bytes());
    iv
}

#[cfg(unix)]
mod imp {
    use std::os::raw::{c_int, c_uint, c_void};
    #[allow(non_camel_case_types)]
    type EVP_CIPHER_CTX = c_void;
    #[allow(non_camel_case_types)]
    type EVP_CIPHER = c_void;
    #[allow(non_camel_case_types)]
    type EVP_MD = c_void;
    #[allow(non_camel_case_types)]
    type HMAC_CTX = c_void;

    extern "C" {
        fn EVP_CIPHER_CTX_new() -> *mut EVP_CIPHER_CTX;
        fn EVP_CIPHER_CTX_free(c: *mut EVP_CIPHER_CTX);
        fn EVP_aes_128_ctr() -> *const EVP_CIPHER;
        fn EVP_EncryptInit_ex(c: *mut EVP_CIPHER_CTX, t: *const EVP_CIPHER, e: *mut c_void, key: *const u8, iv: *const u8) -> c_int;
        fn EVP_EncryptUpdate(c: *mut EVP_CIPHER_CTX, out: *mut u8, outl: *mut c_int, inp: *const u8, inl: c_int) -> c_int;
        fn EVP_sha256() -> *const EVP_MD;
        fn HMAC_CTX_new() -> *mut HMAC_CTX;
        fn HMAC_CTX_free(c: *mut HMAC_CTX);
        fn HMAC_Init_ex(c: *mut HMAC_CTX, key: *const c_void, len: c_int, md: *const EVP_MD, e: *mut c_void) -> c_int;
        fn HMAC_Update(c: *mut HMAC_CTX, data: *const u8, len: usize) -> c_int;
        fn HMAC_Final(c: *mut HMAC_CTX, md: *mut u8, len: *mut c_uint) -> c_int;
    }

    pub struct AesCtr {
        ctx: *mut EVP_CIPHER_CTX,
        salt: [u8; 8],
    }
    // The context is only used through &mut self.
    unsafe impl Send for AesCtr {}

    impl AesCtr {
        pub fn new(key: &[u8; 16], salt: &[u8; 8]) -> Result<AesCtr, &'static str> {
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
                Ok(AesCtr { ctx, salt: *salt })
            }
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

        /// XORs `data` with the keystream starting at byte `position`.
        pub fn apply(&mut self, position: u64, data: &mut [u8]) -> bool {
            if data.is_empty() {
                return true;
            }
            let iv = super::iv_for(&self.salt, position);
            self.apply_iv(&iv, (position % 16) as usize, data)
        }
    }

    impl Drop for AesCtr {
        fn drop(&mut self) {
            unsafe { EVP_CIPHER_CTX_free(self.ctx) }
        }
    }

    pub struct Hmac {
        ctx: *mut HMAC_CTX,
        fresh: bool,
    }
    unsafe impl Send for Hmac {}

    impl Hmac {
        pub fn new(key: &[u8]) -> Result<Hmac, &'static str> {
            unsafe {
                let ctx = HMAC_CTX_new();
                if ctx.is_null() {
                    return Err("HMAC_CTX_new failed");
                }
                if HMAC_Init_ex(ctx, key.as_ptr() as *const c_void, key.len() as c_int, EVP_sha256(), std::ptr::null_mut()) != 1 {
                    HMAC_CTX_free(ctx);
                    return Err("HMAC_Init_ex failed");
                }
                Ok(Hmac { ctx, fresh: true })
            }
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
            unsafe { HMAC_CTX_free(self.ctx) }
        }
    }
}

#[cfg(windows)]
mod imp {
    //! CNG: AES in ECB mode produces the counter-block keystream; HMAC-SHA256 with a reusable
    //! hash object. Compiled by CI's `cargo check --target x86_64-pc-windows-gnu`; run-time
    //! tests of this path belong to the Windows backend issue.
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
        salt: [u8; 8],
    }
    unsafe impl Send for AesCtr {}

    impl AesCtr {
        pub fn new(key: &[u8; 16], salt: &[u8; 8]) -> Result<AesCtr, &'static str> {
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
                Ok(AesCtr { alg, key: k, salt: *salt })
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
        pub fn apply(&mut self, position: u64, data: &mut [u8]) -> bool {
            if data.is_empty() {
                return true;
            }
            let iv = super::iv_for(&self.salt, position);
            self.apply_iv(&iv, (position % 16) as usize, data)
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
}

pub use imp::{AesCtr, Hmac};

/// One-shot HMAC-SHA256 (tests and the compat mode).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let mut h = Hmac::new(key).ok()?;
    if !h.begin() {
        return None;
    }
    for p in parts {
        if !h.update(p) {
            return None;
        }
    }
    let mut out = [0u8; 32];
    if h.finish(&mut out) {
        Some(out)
    } else {
        None
    }
}

#[cfg(test)]
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes128_ctr_sp800_38a_f51() {
        // NIST SP 800-38A, F.5.1 CTR-AES128.Encrypt
        let key: [u8; 16] = hex("2b7e151628aed2a6abf7158809cf4f3c").try_into().unwrap();
        let iv: [u8; 16] = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").try_into().unwrap();
        let pt = hex("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710");
        let ct = hex("874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff 5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee");
        let mut c = AesCtr::new(&key, &[0; 8]).unwrap();
        let mut d = pt.clone();
        assert!(c.apply_iv(&iv, 0, &mut d));
        assert_eq!(d, ct);
        // decrypt a suffix by skipping into the stream: bytes 20.. of the stream
        let mut iv2 = iv;
        iv2[15] = iv2[15].wrapping_add(1); // block 1 (no carry for this IV's last byte 0xff -> 0x00, fix carry)
        let ctr = u128::from_be_bytes(iv).wrapping_add(1);
        iv2.copy_from_slice(&ctr.to_be_bytes());
        let mut d2 = ct[20..].to_vec();
        assert!(c.apply_iv(&iv2, 4, &mut d2));
        assert_eq!(d2, pt[20..].to_vec());
    }

    #[test]
    fn aes_ctr_position_is_byte_exact() {
        let key = [7u8; 16];
        let salt = [1, 2, 3, 4, 5, 6, 7, 8];
        let mut c = AesCtr::new(&key, &salt).unwrap();
        let mut whole = vec![0u8; 200];
        assert!(c.apply(1000, &mut whole));
        for start in [0usize, 1, 15, 16, 17, 100] {
            let mut part = vec![0u8; 200 - start];
            assert!(c.apply(1000 + start as u64, &mut part));
            assert_eq!(part, whole[start..].to_vec());
        }
        assert_eq!(iv_for(&salt, 0x1234_5678_9abc_def0)[8..], (0x1234_5678_9abc_def0u64 / 16).to_be_bytes());
    }

    #[test]
    fn hmac_sha256_rfc4231() {
        // RFC 4231 test cases 1, 2 and 6 (key longer than block size)
        let t1 = hmac_sha256(&[0x0b; 20], &[b"Hi There"]).unwrap();
        assert_eq!(t1.to_vec(), hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
        let t2 = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]).unwrap();
        assert_eq!(t2.to_vec(), hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
        let t6 = hmac_sha256(&[0xaa; 131], &[b"Test Using Larger Than Block-Size Key - Hash Key First"]).unwrap();
        assert_eq!(t6.to_vec(), hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
        // reuse of one context gives the same answer
        let mut h = Hmac::new(&[0x0b; 20]).unwrap();
        for _ in 0..3 {
            assert!(h.begin());
            assert!(h.update(b"Hi There"));
            let mut o = [0u8; 32];
            assert!(h.finish(&mut o));
            assert_eq!(o, t1);
        }
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
