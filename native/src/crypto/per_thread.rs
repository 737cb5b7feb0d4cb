//! One AES-128-CTR and one HMAC-SHA256 context per thread, keyed for each call from the raw keys
//! a flow keeps. A flow holds 56 bytes of keys per direction instead of two library contexts
//! (about 1.4 KB per direction with OpenSSL 3): a million flows fit in a gateway's memory
//! (docs/performance.md, lever 3). Re-keying is skipped when the key is the one the context
//! already holds (consecutive packets of one flow, the bulk case); otherwise it costs an AES key
//! schedule and the two HMAC pad blocks, done by the library. Nothing here computes AES or SHA-256.

use super::{ct_eq, AesCtr, Hmac};
use std::cell::RefCell;

/// Longest HMAC key remembered (longer keys are hashed by HMAC itself; they are re-set each call).
const MAC_KEY_MAX: usize = 64;

struct ThreadCrypto {
    aes: AesCtr,
    aes_key: [u8; 16],
    mac: Hmac,
    mac_key: [u8; MAC_KEY_MAX],
    /// Length of the key in `mac_key`; `usize::MAX`: none remembered.
    mac_key_len: usize,
}

impl ThreadCrypto {
    fn new() -> Result<ThreadCrypto, &'static str> {
        Ok(ThreadCrypto {
            aes: AesCtr::new(&[0; 16])?,
            aes_key: [0; 16],
            mac: Hmac::new(&[0; 32])?,
            mac_key: [0; MAC_KEY_MAX],
            mac_key_len: 32,
        })
    }

    fn aes_keyed(&mut self, key: &[u8; 16]) -> Option<&mut AesCtr> {
        if !ct_eq(&self.aes_key, key) {
            if !self.aes.set_key(key) {
                self.aes_key = [0; 16];
                // the context's key is unknown now: force a re-key next time
                self.aes_key[0] = !key[0];
                return None;
            }
            self.aes_key = *key;
        }
        Some(&mut self.aes)
    }

    fn mac_keyed(&mut self, key: &[u8]) -> Option<&mut Hmac> {
        let same = self.mac_key_len == key.len() && ct_eq(&self.mac_key[..key.len().min(MAC_KEY_MAX)], key);
        if !same {
            self.mac_key_len = usize::MAX;
            if !self.mac.set_key(key) {
                return None;
            }
            if key.len() <= MAC_KEY_MAX {
                self.mac_key[..key.len()].copy_from_slice(key);
                self.mac_key_len = key.len();
            }
        }
        Some(&mut self.mac)
    }
}

impl Drop for ThreadCrypto {
    fn drop(&mut self) {
        for b in self.aes_key.iter_mut().chain(self.mac_key.iter_mut()) {
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

thread_local! {
    static CRYPTO: RefCell<Option<ThreadCrypto>> = RefCell::new(None);
}

fn with<R>(f: impl FnOnce(&mut ThreadCrypto) -> Option<R>) -> Option<R> {
    CRYPTO
        .try_with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            if c.is_none() {
                *c = Some(ThreadCrypto::new().ok()?);
            }
            f(c.as_mut()?)
        })
        .ok()
        .flatten()
}

/// HMAC-SHA256 under `key` of the concatenated `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    with(|t| {
        let h = t.mac_keyed(key)?;
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
    })
}

/// AES-128-CTR under `key` from the initial counter block `iv`, skipping `skip` bytes of the
/// first block's keystream: XORs `data` in place.
pub fn aes128_ctr(key: &[u8; 16], iv: &[u8; 16], skip: usize, data: &mut [u8]) -> bool {
    if data.is_empty() {
        return true;
    }
    with(|t| if t.aes_keyed(key)?.apply_iv(iv, skip, data) { Some(()) } else { None }).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternating_keys_give_each_key_its_own_answer() {
        // Two keys in turn on one thread: each call re-keys (or not) and the answers stay those of
        // a fresh context under that key.
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let want1 = {
            let mut h = Hmac::new(&k1).unwrap();
            let mut o = [0u8; 32];
            assert!(h.begin() && h.update(b"x") && h.finish(&mut o));
            o
        };
        let want2 = {
            let mut h = Hmac::new(&k2).unwrap();
            let mut o = [0u8; 32];
            assert!(h.begin() && h.update(b"x") && h.finish(&mut o));
            o
        };
        assert_ne!(want1, want2);
        for _ in 0..3 {
            assert_eq!(hmac_sha256(&k1, &[b"x"]).unwrap(), want1);
            assert_eq!(hmac_sha256(&k1, &[b"x"]).unwrap(), want1, "same key again (no re-key)");
            assert_eq!(hmac_sha256(&k2, &[b"x"]).unwrap(), want2);
        }
        // a key of another length that shares a prefix is another key
        assert_ne!(hmac_sha256(&k1[..16], &[b"x"]).unwrap(), want1);

        let (a1, a2) = ([3u8; 16], [4u8; 16]);
        let iv = [9u8; 16];
        let ks = |k: &[u8; 16]| {
            let mut c = AesCtr::new(k).unwrap();
            let mut d = [0u8; 40];
            assert!(c.apply_iv(&iv, 0, &mut d));
            d
        };
        let (s1, s2) = (ks(&a1), ks(&a2));
        for _ in 0..3 {
            let mut d = [0u8; 40];
            assert!(aes128_ctr(&a1, &iv, 0, &mut d));
            assert_eq!(d, s1);
            let mut d = [0u8; 40];
            assert!(aes128_ctr(&a2, &iv, 0, &mut d));
            assert_eq!(d, s2);
        }
    }

    #[test]
    fn each_thread_has_its_own_context() {
        let want = hmac_sha256(&[5u8; 32], &[b"thread"]).unwrap();
        let hs: Vec<_> = (0..4u8)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    for j in 0..200u8 {
                        // interleave keys so the contexts re-key often
                        got.push(hmac_sha256(&[i.wrapping_add(j); 32], &[b"thread"]).unwrap());
                        got.push(hmac_sha256(&[5u8; 32], &[b"thread"]).unwrap());
                    }
                    got
                })
            })
            .collect();
        for h in hs {
            let got = h.join().unwrap();
            for pair in got.chunks(2) {
                assert_eq!(pair[1], want);
            }
        }
    }
}
