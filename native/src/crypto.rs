//! Crypto primitives from the OS, through hand-declared FFI: OpenSSL libcrypto on Linux
//! (crypto/openssl_linux.rs), CNG (bcrypt.dll) on Windows (crypto/cng_windows.rs). Nothing here
//! implements AES or SHA-256 itself; this file is the portable front both share.
//!
//! A flow keeps raw keys only; the work is done with one context per thread, keyed per call
//! (crypto/per_thread.rs): `aes_ctr_siv` encrypts/decrypts in place with the counter block
//! T(12) || be32(block) (the secure mode, docs/pccom.md §3); `aes_ctr_at` with
//! salt(8) || be64(position / 16), skipping position % 16 bytes of the first block (the compat
//! mode); `hmac_sha256` is HMAC-SHA256. `AesCtr` and `Hmac` are the library contexts themselves.
//! `hkdf_sha256` (Linux only) is HKDF-SHA256 by OpenSSL's KDF, several outputs per call (the flow
//! keys of a whole RESERVE); wine 8's bcrypt has no CNG HKDF to test a Windows twin against, so
//! the Windows agent derives with node:crypto (common/src/protocol/openssl.ts).

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

#[cfg(not(windows))]
mod openssl_linux;
#[cfg(not(windows))]
pub use openssl_linux::{AesCtr, Hkdf, Hmac};
#[cfg(windows)]
mod cng_windows;
#[cfg(windows)]
pub use cng_windows::{AesCtr, Hmac};
mod per_thread;
#[cfg(not(windows))]
pub use per_thread::hkdf_sha256;
pub use per_thread::{aes128_ctr, hmac_sha256};

/// Length of the synthetic IV T (the truncated MAC).
pub const SIV_LEN: usize = 12;

/// The first counter block of a payload protected under the synthetic IV `t`: T || be32(0). The
/// block counter runs in the low 32 bits and never carries into T (a payload is far below 2^36
/// bytes).
pub fn siv_block(t: &[u8; SIV_LEN]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..SIV_LEN].copy_from_slice(t);
    iv
}

/// XORs `data` with the AES-128-CTR keystream of key `key` and synthetic IV `t` (counter blocks
/// T || be32(i)).
pub fn aes_ctr_siv(key: &[u8; 16], t: &[u8; SIV_LEN], data: &mut [u8]) -> bool {
    aes128_ctr(key, &siv_block(t), 0, data)
}

/// Compat mode: XORs `data` with the keystream of `key` and `salt` starting at byte `position`.
pub fn aes_ctr_at(key: &[u8; 16], salt: &[u8; 8], position: u64, data: &mut [u8]) -> bool {
    aes128_ctr(key, &iv_for(salt, position), (position % 16) as usize, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn aes128_ctr_sp800_38a_f51() {
        // NIST SP 800-38A, F.5.1 CTR-AES128.Encrypt
        let key: [u8; 16] = hex("2b7e151628aed2a6abf7158809cf4f3c").try_into().unwrap();
        let iv: [u8; 16] = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").try_into().unwrap();
        let pt = hex("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710");
        let ct = hex("874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff 5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee");
        let mut c = AesCtr::new(&key).unwrap();
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
        let mut whole = vec![0u8; 200];
        assert!(aes_ctr_at(&key, &salt, 1000, &mut whole));
        for start in [0usize, 1, 15, 16, 17, 100] {
            let mut part = vec![0u8; 200 - start];
            assert!(aes_ctr_at(&key, &salt, 1000 + start as u64, &mut part));
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

    #[cfg(not(windows))]
    #[test]
    fn hkdf_sha256_rfc5869() {
        // RFC 5869 A.1 (basic) and A.2 (longer inputs and output)
        let mut okm = [0u8; 42];
        assert!(hkdf_sha256(&[0x0b; 22], &hex("000102030405060708090a0b0c"), &hex("f0f1f2f3f4f5f6f7f8f9"), 10, 42, &mut okm));
        assert_eq!(okm.to_vec(), hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"));
        let ikm: Vec<u8> = (0x00..=0x4f).collect();
        let salt: Vec<u8> = (0x60..=0xaf).collect();
        let info: Vec<u8> = (0xb0..=0xff).collect();
        let mut okm = [0u8; 82];
        assert!(hkdf_sha256(&ikm, &salt, &info, 80, 82, &mut okm));
        assert_eq!(
            okm.to_vec(),
            hex("b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87")
        );
    }

    #[cfg(not(windows))]
    #[test]
    fn hkdf_sha256_batch_is_each_alone_and_empty_salt_is_zeros() {
        let ikm = [3u8; 32];
        let infos = b"gsra/1 flow AAAAAAAgsra/1 flow BBBBBBBgsra/1 flow CCCCCCC";
        let mut all = [0u8; 3 * 56];
        assert!(hkdf_sha256(&ikm, b"", infos, 19, 56, &mut all));
        for (i, info) in infos.chunks(19).enumerate() {
            let mut one = [0u8; 56];
            assert!(hkdf_sha256(&ikm, b"", info, 19, 56, &mut one));
            assert_eq!(one, all[i * 56..(i + 1) * 56]);
            // RFC 5869 §2.2: no salt is HashLen zeros; a salt used just before must not linger
            let mut other = [0u8; 56];
            assert!(hkdf_sha256(&ikm, b"some salt", info, 19, 56, &mut other));
            assert_ne!(other, one);
            assert!(hkdf_sha256(&ikm, &[0u8; 32], info, 19, 56, &mut other));
            assert_eq!(other, one);
        }
        // refusals: no IKM, no info, sizes that do not add up, more than 255 blocks
        let mut o = [0u8; 56];
        assert!(!hkdf_sha256(b"", b"", &infos[..19], 19, 56, &mut o));
        assert!(!hkdf_sha256(&ikm, b"", b"", 0, 56, &mut o));
        assert!(!hkdf_sha256(&ikm, b"", &infos[..20], 19, 56, &mut o));
        assert!(!hkdf_sha256(&ikm, b"", &infos[..19], 19, 55, &mut o));
        let mut big = vec![0u8; 255 * 32 + 1];
        assert!(!hkdf_sha256(&ikm, b"", &infos[..19], 19, big.len(), &mut big));
        // and the context still answers after refusals
        assert!(hkdf_sha256(&ikm, b"", &infos[..19], 19, 56, &mut o));
        assert_eq!(o, all[..56]);
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
