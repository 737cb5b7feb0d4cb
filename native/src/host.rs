//! The engine as the N-API layer and the backends share it: the engine behind its lock, the
//! packets released to an in-memory caller, and the wake-up for TypeScript's event callback.
//!
//! The host knows no backend. A backend's threads hold the host (`Arc<Host>`); whoever owns the
//! backend (the N-API instance) owns the host too, and hands the backend to the calls that must
//! carry out verdicts decided later (`deliver`). So no reference cycle ties the two.

use crate::engine::{Engine, Handle, Hook, OutItem, Reason, Step, Verdict};
use crate::lock::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// What the host needs from a packet source to carry out decisions made after the packet's own
/// turn: held packets released, punt verdicts, and the RST / ICMP the engine made. Every backend
/// is one (see backend.rs).
pub trait PacketSink: Send + Sync {
    /// Gives the verdict for a packet the backend still holds (None = drop, Some = accept with
    /// these bytes).
    fn verdict(&self, queue: u16, id: u32, bytes: Option<&[u8]>) -> Result<(), String>;
    /// Sends a packet the engine made: toward an application (`Hook::In`: TCP RST / ICMP error)
    /// or toward the internet (`Hook::Out`: an agent's probe, a gateway's copy to a candidate).
    fn inject(&self, hook: Hook, bytes: &[u8]) -> Result<(), String>;
}

/// What the engine left for later after a call or a batch.
pub struct Pending {
    items: Vec<OutItem>,
    have_events: bool,
}

pub struct Host {
    pub eng: Mutex<Engine>,
    /// Packets handled in memory (`process()`) that were released later: (hook, bytes).
    pub released: Mutex<Vec<(Hook, Vec<u8>)>>,
    /// Called (without locks held) when events are waiting; set by the N-API layer.
    pub notify: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    pub notify_pending: AtomicBool,
}

static START: Mutex<Option<Instant>> = Mutex::new(None);

/// Milliseconds on a monotonic clock (never 0): the engine's `now`.
pub fn now_ms() -> u64 {
    let s = *lock(&START).get_or_insert_with(Instant::now);
    s.elapsed().as_millis() as u64 + 1
}

impl Host {
    pub fn new(eng: Engine) -> Host {
        Host { eng: Mutex::new(eng), released: Mutex::new(Vec::new()), notify: Mutex::new(None), notify_pending: AtomicBool::new(false) }
    }

    /// One packet a backend took: table work under the engine lock, crypto under the flow's
    /// lock only, so threads working on different flows run their AES and HMAC in parallel. A
    /// panic is caught and the packet dropped (`Drop(Reason::Panic)`; count it in `end_batch`).
    pub fn process_queued(&self, pkt: &mut Vec<u8>, hook: Hook, handle: Handle, now: u64) -> Verdict {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let step = lock(&self.eng).classify(pkt, hook, handle, now);
            match step {
                Step::Done(v) => v,
                Step::Crypto(job) => {
                    let o = job.run(pkt);
                    lock(&self.eng).finish(&job, o, pkt)
                }
            }
        }))
        .unwrap_or(Verdict::Drop(Reason::Panic))
    }

    /// The payload size to cut a GSO super-packet into before `process_queued` takes each
    /// segment, or None: let the kernel segment it (Engine::gso_size).
    pub fn gso_size(&self, pkt: &[u8], hook: Hook) -> Option<usize> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lock(&self.eng).gso_size(pkt, hook))).unwrap_or(None)
    }

    /// After a backend's batch: counts its panics, runs expiry over up to `budget` flows and takes
    /// what is pending, under one lock.
    pub fn end_batch(&self, now: u64, panics: u64, budget: usize) -> Pending {
        let mut e = lock(&self.eng);
        e.stats.panics += panics;
        for _ in 0..panics {
            e.stats.count_drop(Reason::Panic);
        }
        e.sweep(now, budget);
        Pending { items: std::mem::take(&mut e.outbox), have_events: !e.events.is_empty() }
    }

    /// After a table call from TypeScript: takes what is pending.
    pub fn pending(&self) -> Pending {
        let mut e = lock(&self.eng);
        Pending { items: std::mem::take(&mut e.outbox), have_events: !e.events.is_empty() }
    }

    /// Carries out pending verdicts and injections through `sink` (packets of `Handle::Memory`
    /// go to the released list), then wakes the event consumer. Call without the engine lock.
    pub fn deliver<S: PacketSink + ?Sized>(&self, p: Pending, sink: Option<&S>) {
        for it in p.items {
            match (it.handle, sink) {
                (Handle::Queued { queue, id }, Some(s)) => {
                    let _ = s.verdict(queue, id, it.bytes.as_deref());
                }
                (Handle::Queued { .. }, None) => {} // backend gone: the kernel drops it (fail closed)
                (Handle::Memory, Some(s)) if it.injected => {
                    if let Some(bytes) = &it.bytes {
                        let _ = s.inject(it.hook, bytes);
                    }
                }
                (Handle::Memory, _) => {
                    if let Some(bytes) = it.bytes {
                        lock(&self.released).push((it.hook, bytes));
                    }
                }
            }
        }
        self.maybe_notify(p.have_events);
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
