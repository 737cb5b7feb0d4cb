//! AES-128-CTR and HMAC-SHA256 contexts per thread, keyed for each call from the raw keys a flow
//! keeps. A flow holds 56 bytes of keys per direction instead of two library contexts (about
//! 1.4 KB per direction with OpenSSL 3): a million flows fit in a gateway's memory
//! (docs/performance.md, lever 3). Each thread keeps contexts for its last 8 keys, so a flow's two
//! directions and a few interleaved flows need no re-key; otherwise the least recently used one is
//! re-keyed (an AES key schedule and HMAC's two pad blocks, done by the library: 0.3-1 us each
//! measured on OpenSSL 3). On Linux a thread also keeps one OpenSSL HKDF context (the KDF fetched
//! once) for `hkdf_sha256`. Nothing here computes AES, SHA-256 or HKDF.

#[cfg(not(windows))]
use super::Hkdf;
use super::{ct_eq, AesCtr, Hmac};
use std::cell::RefCell;

/// Longest key remembered (longer HMAC keys are hashed by HMAC itself; they are re-set each call).
const KEY_MAX: usize = 64;
/// Keyed contexts kept per thread and per algorithm: a flow's two directions (a gateway verifies
/// data one way and protects the ACKs the other) and a few flows interleaved in a batch each find
/// theirs without a re-key. About 1.4 KB per slot pair with OpenSSL 3.
const SLOTS: usize = 8;

/// One keyed library context and the key it holds.
struct Slot<C> {
    ctx: C,
    key: [u8; KEY_MAX],
    /// Length of `key`; `usize::MAX`: none (the context's key is unknown).
    len: usize,
    used: u64,
}

/// The last few keys' contexts, least recently used replaced first.
struct Keyed<C> {
    slots: Vec<Slot<C>>,
    tick: u64,
}

impl<C> Keyed<C> {
    fn new() -> Keyed<C> {
        Keyed { slots: Vec::new(), tick: 0 }
    }

    /// The context keyed with `key`: one that holds it, else a new one (up to SLOTS), else the
    /// least recently used one re-keyed by `set`.
    fn get(&mut self, key: &[u8], new: impl FnOnce(&[u8]) -> Option<C>, set: impl FnOnce(&mut C, &[u8]) -> bool) -> Option<&mut C> {
        self.tick += 1;
        let tick = self.tick;
        let i = match self.slots.iter().position(|s| s.len == key.len() && ct_eq(&s.key[..key.len().min(KEY_MAX)], key)) {
            Some(i) => i,
            None if self.slots.len() < SLOTS => {
                self.slots.push(Slot { ctx: new(key)?, key: [0; KEY_MAX], len: usize::MAX, used: 0 });
                let i = self.slots.len() - 1;
                self.remember(i, key);
                i
            }
            None => {
                let i = (0..self.slots.len()).min_by_key(|&i| self.slots[i].used)?;
                self.slots[i].len = usize::MAX;
                if !set(&mut self.slots[i].ctx, key) {
                    return None;
                }
                self.remember(i, key);
                i
            }
        };
        self.slots[i].used = tick;
        Some(&mut self.slots[i].ctx)
    }

    fn remember(&mut self, i: usize, key: &[u8]) {
        if key.len() <= KEY_MAX {
            self.slots[i].key[..key.len()].copy_from_slice(key);
            self.slots[i].len = key.len();
        }
    }
}

impl<C> Drop for Keyed<C> {
    fn drop(&mut self) {
        for s in self.slots.iter_mut() {
            for b in s.key.iter_mut() {
                unsafe { std::ptr::write_volatile(b, 0) };
            }
        }
    }
}

struct ThreadCrypto {
    aes: Keyed<AesCtr>,
    mac: Keyed<Hmac>,
    #[cfg(not(windows))]
    hkdf: Option<Hkdf>,
}

impl ThreadCrypto {
    fn new() -> Result<ThreadCrypto, &'static str> {
        Ok(ThreadCrypto {
            aes: Keyed::new(),
            mac: Keyed::new(),
            #[cfg(not(windows))]
            hkdf: None,
        })
    }

    fn aes_keyed(&mut self, key: &[u8; 16]) -> Option<&mut AesCtr> {
        self.aes.get(
            key,
            |k| AesCtr::new(k.try_into().ok()?).ok(),
            |c, k| k.try_into().map(|k| c.set_key(k)).unwrap_or(false),
        )
    }

    fn mac_keyed(&mut self, key: &[u8]) -> Option<&mut Hmac> {
        self.mac.get(key, |k| Hmac::new(k).ok(), |c, k| c.set_key(k))
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

/// HKDF-SHA256 of `ikm` and `salt` for each info in `infos` (`info_len` bytes each), `out_len`
/// bytes each, written one after the other into `out` (`infos.len() / info_len × out_len` bytes).
/// One Extract for all of them, one Expand each, by OpenSSL's KDF. False on a library failure,
/// an empty IKM or info, or sizes that do not add up.
#[cfg(not(windows))]
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], infos: &[u8], info_len: usize, out_len: usize, out: &mut [u8]) -> bool {
    if info_len == 0 || infos.len() % info_len != 0 || out.len() != infos.len() / info_len * out_len {
        return false;
    }
    with(|t| {
        if t.hkdf.is_none() {
            t.hkdf = Some(Hkdf::new().ok()?);
        }
        let h = t.hkdf.as_mut()?;
        let mut prk = [0u8; 32];
        let mut ok = h.extract(ikm, salt, &mut prk);
        for (info, o) in infos.chunks(info_len).zip(out.chunks_mut(out_len)) {
            ok = ok && h.expand(&prk, info, o);
        }
        for b in prk.iter_mut() {
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        if ok {
            Some(())
        } else {
            None
        }
    })
    .is_some()
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
