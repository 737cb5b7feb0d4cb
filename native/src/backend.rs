//! The boundary between the engine and the OS packet path: a trait with two implementations,
//! Linux NFQUEUE (`nfq`) and a Windows WFP stub (`wfp`, compiles, refuses to start).

use crate::engine::{Engine, Handle, Hook, OutItem};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    /// Gives the verdict for a queued packet (None = drop, Some = accept with these bytes).
    fn verdict(&self, queue: u16, id: u32, bytes: Option<&[u8]>) -> Result<(), String>;
    /// Sends a packet the engine made (TCP RST / ICMP error toward an application).
    fn inject(&self, bytes: &[u8]) -> Result<(), String>;
    fn stop(&self);
    fn counters(&self) -> Vec<(&'static str, u64)>;
}

#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub num: u16,
    pub hook: Hook,
}

#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub queues: Vec<QueueSpec>,
    pub max_len: u32,
    pub batch: usize,
}

/// Engine plus everything the N-API layer and the backends share.
pub struct Shared {
    pub eng: Mutex<Engine>,
    pub backend: Mutex<Option<Arc<dyn Backend>>>,
    /// Packets handled in memory (process()) that were released later: (hook, bytes).
    pub released: Mutex<Vec<(Hook, Vec<u8>)>>,
    /// Called (without locks held) when events are waiting; set by the N-API layer.
    pub notify: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    pub notify_pending: AtomicBool,
}

static START: Mutex<Option<Instant>> = Mutex::new(None);

/// Milliseconds on a monotonic clock (never 0).
pub fn now_ms() -> u64 {
    let mut g = match START.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let s = *g.get_or_insert_with(Instant::now);
    s.elapsed().as_millis() as u64 + 1
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Shared {
    pub fn new(eng: Engine) -> Shared {
        Shared { eng: Mutex::new(eng), backend: Mutex::new(None), released: Mutex::new(Vec::new()), notify: Mutex::new(None), notify_pending: AtomicBool::new(false) }
    }

    /// Carries out queued verdicts / injections. Call without the engine lock held.
    pub fn flush(&self, items: Vec<OutItem>) {
        if items.is_empty() {
            return;
        }
        let be = lock(&self.backend).clone();
        for it in items {
            match (it.handle, &be) {
                (Handle::Nfq { queue, id }, Some(b)) => {
                    let _ = b.verdict(queue, id, it.bytes.as_deref());
                }
                (Handle::Nfq { .. }, None) => {} // backend gone: the kernel drops it (fail closed)
                (Handle::Memory, Some(b)) if it.injected => {
                    if let Some(bytes) = &it.bytes {
                        let _ = b.inject(bytes);
                    }
                }
                (Handle::Memory, _) => {
                    if let Some(bytes) = it.bytes {
                        lock(&self.released).push((it.hook, bytes));
                    }
                }
            }
        }
    }

    /// Wakes the event consumer if events are waiting.
    pub fn maybe_notify(&self, have_events: bool) {
        if !have_events {
            return;
        }
        if self.notify_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let n = lock(&self.notify);
        match n.as_ref() {
            Some(f) => f(),
            None => self.notify_pending.store(false, Ordering::Release),
        }
    }
}

/// Starts the platform backend for `shared`.
pub fn start(shared: Arc<Shared>, cfg: BackendConfig) -> Result<Arc<dyn Backend>, String> {
    #[cfg(target_os = "linux")]
    {
        let b = nfq::Nfq::start(shared, cfg)?;
        Ok(b)
    }
    #[cfg(windows)]
    {
        wfp::Wfp::start(shared, cfg)
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = (shared, cfg);
        Err("no packet backend for this OS".into())
    }
}

#[cfg(windows)]
pub mod wfp {
    //! Windows Filtering Platform backend: comes in its own issue. This stub keeps the boundary
    //! honest (same trait, compiles in CI) and refuses to start, so nothing passes untranslated.
    use super::*;
    pub struct Wfp;
    impl Wfp {
        pub fn start(_shared: Arc<Shared>, _cfg: BackendConfig) -> Result<Arc<dyn Backend>, String> {
            Err("the WFP backend is not implemented yet (Windows backend issue)".into())
        }
    }
    impl Backend for Wfp {
        fn name(&self) -> &'static str {
            "wfp"
        }
        fn verdict(&self, _q: u16, _id: u32, _b: Option<&[u8]>) -> Result<(), String> {
            Err("not implemented".into())
        }
        fn inject(&self, _b: &[u8]) -> Result<(), String> {
            Err("not implemented".into())
        }
        fn stop(&self) {}
        fn counters(&self) -> Vec<(&'static str, u64)> {
            Vec::new()
        }
    }
}

#[cfg(target_os = "linux")]
pub mod nfq;
