//! Linux NFQUEUE backend: one thread and one netlink socket per queue (the netlink protocol in
//! nfq_netlink_linux.rs). A daemon gives each side several queues (native/lib/queues.ts: the
//! rules pin each flow to one of them by port, so one thread sees all of a flow's packets, in
//! order); threads share the engine's tables and lock a flow only for its crypto. Per-queue
//! counters: `queue_counters`. recvmmsg() takes up to `batch` packets; all verdicts of a batch go out
//! in one sendmsg() (flushed at 200 KiB), each as NFQNL_MSG_VERDICT with the payload gathered by
//! iovec (no copy). Fail closed: F_FAIL_OPEN is never set, rules never use --queue-bypass, so
//! with no engine bound the kernel drops. Full L4 checksums are written on every modified packet
//! because a payload verdict makes the skb CHECKSUM_NONE.
//!
//! Two things cut the per-packet cost of the crossing (docs/performance.md):
//! - **Polling before sleeping** (`spin_us`; 0 = off, the default): after a batch, the thread polls the
//!   socket without blocking (yielding the CPU between polls) for up to `spin_us` µs, and only
//!   then blocks in recvmmsg(); adaptively (`Spin`): an empty poll backs off. While packets keep
//!   coming no wake-up is paid; an idle queue costs nothing (it blocks).
//! - **GSO super-packets on the sending side** (`gso`, off by default; queues at hook `out`): with
//!   NFQA_CFG_F_GSO the kernel hands one large TCP packet instead of its segments. The thread
//!   cuts it (gso.rs) to the local stack's segment size (Engine::gso_size), runs every segment
//!   through the engine (its own PCCOM option and MAC), sends the protected segments with one
//!   sendmmsg() on a raw socket (raw_linux.rs: why not a verdict) and drops the original. The
//!   verdicts of the batch's earlier packets go first, so a flow's packets keep their order.
//!   Fallback: a super-packet the engine cannot take whole (not a plain protected TCP flow, e.g.
//!   UDP GSO, an ALG flow, no flow yet) or whose segments the raw socket refuses outright turns
//!   F_GSO off on that queue and is given NF_REPEAT, so the hook runs again and the kernel
//!   segments it as before: nothing is lost. F_GSO is asked again 10 s later. Packets a F_GSO
//!   queue takes with a partial checksum (NFQA_SKB_CSUMNOTREADY) get a full one before the engine
//!   sees them, as the kernel does for a queue without F_GSO.

use super::nfq_netlink_linux::*;
use super::nfq_sender_linux::{Outgoing, Sender2};
use super::raw_linux::RawSender;
use super::{Backend, BackendConfig, QueueSpec};
use crate::engine::{Handle, Hook, Reason, Verdict};
use crate::host::{now_ms, Host, PacketSink};
use crate::lock::lock;
use crate::pkt::{fix_l4_checksum, parse_ip, PROTO_TCP, PROTO_UDP};
use std::os::raw::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MSG_DONTWAIT: c_int = 0x40;
/// A receive that took this long found the queue empty: the reader had time to spare.
const WAITED: Duration = Duration::from_micros(20);
/// After a fallback, F_GSO is asked again this much later.
const GSO_RETRY_MS: u64 = 10_000;

pub struct Nfq {
    stop: Arc<AtomicBool>,
    socks: Vec<(u16, c_int)>,
    raw: c_int,
    threads: Mutex<Vec<JoinHandle<()>>>,
    owned: Mutex<Vec<Sock>>,
    pub(super) c: Counters,
    /// Per queue (in the order of `socks`): packets received, verdicts sent.
    per_queue: Vec<(AtomicU64, AtomicU64)>,
}

#[derive(Default)]
pub(super) struct Counters {
    received: AtomicU64,
    pub(super) verdicts: AtomicU64,
    pub(super) send_errors: AtomicU64,
    recv_errors: AtomicU64,
    /// Batches taken while spinning (each a wake-up saved).
    spin_batches: AtomicU64,
    gso_packets: AtomicU64,
    gso_segments: AtomicU64,
    gso_fallbacks: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Nfq {
    pub fn start(host: Arc<Host>, cfg: BackendConfig) -> Result<Arc<dyn Backend>, String> {
        if cfg.queues.is_empty() {
            return Err("no queues given".into());
        }
        let mut socks = Vec::new();
        let mut owned = Vec::new();
        let mut gso = Vec::new();
        for q in &cfg.queues {
            let (s, g) = open_queue(q.num, cfg.max_len, cfg.gso && q.hook == Hook::Out)?;
            socks.push((q.num, s.0));
            owned.push(s);
            gso.push(g);
        }
        let raw = unsafe { socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW) };
        let nfq = Arc::new(Nfq { stop: Arc::new(AtomicBool::new(false)), socks, raw, threads: Mutex::new(Vec::new()), owned: Mutex::new(owned), c: Counters::default(), per_queue: cfg.queues.iter().map(|_| (AtomicU64::new(0), AtomicU64::new(0))).collect() });
        for (i, q) in cfg.queues.iter().cloned().enumerate() {
            let t = Thread {
                host: host.clone(),
                me: nfq.clone(),
                fd: nfq.socks[i].1,
                idx: i,
                q,
                batch: cfg.batch.clamp(1, 256),
                spin: Duration::from_micros(cfg.spin_us as u64),
                gso: gso[i],
                verdict_thread: cfg.verdict_thread && !gso[i],
            };
            let spawned = std::thread::Builder::new().name(format!("gsra-nfq{}", t.q.num)).spawn(move || t.run());
            match spawned {
                Ok(h) => lock(&nfq.threads).push(h),
                Err(e) => {
                    nfq.stop();
                    return Err(e.to_string());
                }
            }
        }
        Ok(nfq)
    }
}

/// One queue's thread.
struct Thread {
    host: Arc<Host>,
    me: Arc<Nfq>,
    fd: c_int,
    /// This queue's index in `Nfq::socks` and `per_queue`.
    idx: usize,
    q: QueueSpec,
    batch: usize,
    spin: Duration,
    /// F_GSO was set on the queue.
    gso: bool,
    /// Verdicts sent by a second thread (nfq_sender_linux.rs).
    verdict_thread: bool,
}

/// A queue's F_GSO state and what sends the segments.
struct Gso {
    raw: Option<RawSender>,
    on: bool,
    off_at: u64,
    segs: Vec<Vec<u8>>,
    accepted: Vec<usize>,
}

impl Thread {
    fn run(self) {
        let (fd, queue, hook, batch) = (self.fd, self.q.num, self.q.hook, self.batch);
        let (host, me) = (&*self.host, &*self.me);
        let mut bufs: Vec<Vec<u8>> = (0..batch).map(|_| vec![0u8; SLOT]).collect();
        // The batch's verdicts and accepted bytes; with a verdict thread, swapped for an empty one per batch.
        let mut cur = Outgoing::new(batch);
        let mut sender = if self.verdict_thread { Sender2::start(fd, queue, batch, self.me.clone()).ok() } else { None };
        let mut iovs: Vec<Iovec> = bufs.iter_mut().map(|b| Iovec { base: b.as_mut_ptr() as *mut c_void, len: SLOT }).collect();
        let mut hdrs: Vec<Mmsghdr> = iovs
            .iter_mut()
            .map(|iv| Mmsghdr { hdr: Msghdr { name: std::ptr::null_mut(), namelen: 0, iov: iv as *mut Iovec, iovlen: 1, control: std::ptr::null_mut(), controllen: 0, flags: 0 }, len: 0 })
            .collect();
        let mut vb = VerdictBatch::new();
        // cur.results: (packet id, verdict, slot in `cur.pkts` of the bytes to pass); `sent`: verdicts already out.
        let mut g = Gso { raw: None, on: self.gso, off_at: 0, segs: Vec::new(), accepted: Vec::new() };
        if self.gso {
            match RawSender::open() {
                Ok(r) => g.raw = Some(r),
                Err(_) => g.on = !set_gso(fd, queue, false),
            }
        }
        let mut spin = Spin { window: self.spin, skip: 0, backoff: 0 };
        let mut spin_until: Option<Instant> = None;
        while !me.stop.load(Ordering::Acquire) {
            if self.gso && !g.on && g.raw.is_some() && now_ms().saturating_sub(g.off_at) >= GSO_RETRY_MS {
                g.on = set_gso(fd, queue, true);
                g.off_at = now_ms();
            }
            let asked = Instant::now();
            let n = receive(fd, &mut hdrs, batch, spin_until, &mut spin, &me.c.spin_batches);
            // The thread had to wait for this batch: it has time to forward it itself.
            let waited = asked.elapsed() >= WAITED;
            if n <= 0 {
                let e = errno();
                spin_until = None;
                match e.raw_os_error() {
                    Some(11) | Some(4) => {
                        // EAGAIN (the 100 ms receive timeout) or EINTR: expiry keeps running while idle.
                        host.deliver(host.end_batch(now_ms(), 0, 4096), Some(me));
                        continue;
                    }
                    Some(105) => {
                        add(&me.c.recv_errors, 1);
                        continue;
                    } // ENOBUFS
                    _ => {
                        add(&me.c.recv_errors, 1);
                        if me.stop.load(Ordering::Acquire) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                }
            }
            let n = n as usize;
            cur.results.clear();
            let mut sent = 0;
            let now = now_ms();
            // Per packet: table work under the engine lock (short), crypto under the flow's own lock
            // only, so threads of different queues run their AES/HMAC in parallel.
            let mut panics = 0u64;
            for i in 0..n {
                let len = std::cmp::min(hdrs[i].len as usize, SLOT);
                let msg = &bufs[i][..len];
                // A datagram may carry several netlink messages; packets are one per message.
                let mut off = 0;
                while off + 16 <= msg.len() {
                    let ml = u32::from_ne_bytes([msg[off], msg[off + 1], msg[off + 2], msg[off + 3]]) as usize;
                    if ml < 16 || off + ml > msg.len() {
                        break;
                    }
                    let ty = u16::from_ne_bytes([msg[off + 4], msg[off + 5]]);
                    if ty == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET) {
                        if let Some(pm) = parse_packet_msg(&msg[off..off + ml]) {
                            add(&me.c.received, 1);
                            add(&me.per_queue[self.idx].0, 1);
                            let slot = cur.results.len();
                            if pm.info & NFQA_SKB_GSO != 0 {
                                // The verdicts so far go first: a flow's packets keep their order.
                                vb.send(fd, &me.c.send_errors, &me.c.verdicts, &items(&cur.results[sent..], &cur.pkts), queue);
                                sent = cur.results.len();
                                let v = self.take_gso(&mut g, &pm, now, &mut panics);
                                cur.results.push((pm.id, v, None));
                            } else if slot < cur.pkts.len() {
                                let p = &mut cur.pkts[slot];
                                p.clear();
                                p.extend_from_slice(pm.payload);
                                if pm.info & NFQA_SKB_CSUMNOTREADY != 0 {
                                    complete_checksum(p);
                                }
                                let v = host.process_queued(p, hook, Handle::Queued { queue, id: pm.id }, now);
                                if v == Verdict::Drop(Reason::Panic) {
                                    panics += 1;
                                }
                                match v {
                                    Verdict::Accept => cur.results.push((pm.id, NF_ACCEPT, Some(slot))),
                                    Verdict::Drop(_) => cur.results.push((pm.id, NF_DROP, None)),
                                    Verdict::Held | Verdict::Punted(_) => {}
                                }
                            } else {
                                cur.results.push((pm.id, NF_DROP, None));
                            }
                        }
                    }
                    off += align4(ml);
                }
            }
            let pending = host.end_batch(now, panics, 64);
            add(&me.per_queue[self.idx].1, cur.results.len() as u64);
            // The verdict thread sends them (and the kernel forwards) while this one reads on.
            let mut handed = false;
            if let Some(s) = sender.as_mut() {
                if !s.inline(waited) {
                    cur = s.swap(std::mem::replace(&mut cur, Outgoing::empty()));
                    handed = true;
                }
            }
            if !handed {
                // The rest of this batch's verdicts in one sendmsg (flushed at 200 KiB).
                vb.send(fd, &me.c.send_errors, &me.c.verdicts, &items(&cur.results[sent..], &cur.pkts), queue);
            }
            host.deliver(pending, Some(me));
            spin_until = spin.after_batch();
        }
    }

    /// A GSO super-packet: cut, protect and send its segments; the original's verdict is DROP
    /// (sent) or REPEAT (the kernel segments it: the fallback).
    fn take_gso(&self, g: &mut Gso, pm: &PacketMsg, now: u64, panics: &mut u64) -> u32 {
        let (host, c, hook) = (&*self.host, &self.me.c, self.q.hook);
        let cut = match (&g.raw, host.gso_size(pm.payload, hook)) {
            (Some(_), Some(size)) => crate::gso::segment_tcp(pm.payload, size, &mut g.segs, false).ok(),
            _ => None,
        };
        let k = match cut {
            Some(k) => k,
            None => return self.gso_fallback(g),
        };
        g.accepted.clear();
        for j in 0..k {
            match host.process_queued(&mut g.segs[j], hook, Handle::Memory, now) {
                Verdict::Accept => g.accepted.push(j),
                Verdict::Drop(Reason::Panic) => *panics += 1,
                _ => {}
            }
        }
        let segs: Vec<&[u8]> = g.accepted.iter().map(|&j| &g.segs[j][..]).collect();
        let r = match g.raw.as_mut() {
            Some(raw) => raw.send(&segs, pm.mark),
            None => Err((0, std::io::Error::from_raw_os_error(9))),
        };
        match r {
            Ok(()) => {
                add(&c.gso_packets, 1);
                add(&c.gso_segments, segs.len() as u64);
                NF_DROP
            }
            // Nothing left: the kernel segments it (the engine saw these positions once already,
            // as it sees a retransmission).
            Err((0, _)) => {
                add(&c.send_errors, 1);
                self.gso_fallback(g)
            }
            // Some segments left: TCP retransmits the others.
            Err((sent, _)) => {
                add(&c.send_errors, 1);
                add(&c.gso_segments, sent as u64);
                NF_DROP
            }
        }
    }

    /// F_GSO off on this queue (asked again GSO_RETRY_MS later) and the packet through the hook
    /// again, to come back segmented by the kernel; DROP if F_GSO could not be turned off.
    fn gso_fallback(&self, g: &mut Gso) -> u32 {
        add(&self.me.c.gso_fallbacks, 1);
        if g.on {
            g.on = !set_gso(self.fd, self.q.num, false);
            g.off_at = now_ms();
        }
        if g.on {
            NF_DROP
        } else {
            NF_REPEAT
        }
    }
}

/// The verdict items of `results` (bytes from `pkts`).
fn items<'a>(results: &[(u32, u32, Option<usize>)], pkts: &'a [Vec<u8>]) -> Vec<(u32, u32, Option<&'a [u8]>)> {
    results.iter().map(|&(id, v, slot)| (id, v, slot.map(|s| &pkts[s][..]))).collect()
}

/// A TCP or UDP packet with only the pseudo-header's partial sum gets its full checksum.
fn complete_checksum(p: &mut [u8]) {
    if let Ok(ip) = parse_ip(p, false) {
        if (ip.proto == PROTO_TCP || ip.proto == PROTO_UDP) && !crate::pkt::is_fragment(p) && ip.total >= ip.ihl + 8 {
            fix_l4_checksum(p, ip.ihl, ip.total, ip.proto);
        }
    }
}

/// Whether to poll before sleeping, adaptively: polling pays only while the next batch comes
/// within the window. A poll that ends empty makes the thread sleep at once after the next 1, 2,
/// 4 … 64 batches; a poll that finds a batch resets that. So a stream of packets keeps the thread
/// awake, while request/response traffic slower than the window costs at most one empty poll
/// per 64 batches, and an idle queue sleeps.
struct Spin {
    window: Duration,
    skip: u32,
    backoff: u32,
}

impl Spin {
    /// After a batch: poll until this instant, or None (sleep at once).
    fn after_batch(&mut self) -> Option<Instant> {
        if self.window.as_micros() == 0 {
            return None;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        Some(Instant::now() + self.window)
    }
    fn hit(&mut self) {
        self.backoff = 0;
    }
    fn miss(&mut self) {
        self.backoff = std::cmp::min(std::cmp::max(self.backoff * 2, 1), 64);
        self.skip = self.backoff;
    }
}

/// recvmmsg(): first polling without blocking until `spin_until` (yielding the CPU between
/// polls), then blocking (up to the socket's 100 ms timeout).
fn receive(fd: c_int, hdrs: &mut [Mmsghdr], batch: usize, spin_until: Option<Instant>, spin: &mut Spin, spun: &AtomicU64) -> c_int {
    if let Some(until) = spin_until {
        loop {
            let n = unsafe { recvmmsg(fd, hdrs.as_mut_ptr(), batch as c_uint, MSG_WAITFORONE | MSG_DONTWAIT, std::ptr::null_mut()) };
            if n > 0 {
                add(spun, 1);
                spin.hit();
                return n;
            }
            if errno().raw_os_error() != Some(11) || Instant::now() >= until {
                spin.miss();
                break;
            }
            std::thread::yield_now();
        }
    }
    unsafe { recvmmsg(fd, hdrs.as_mut_ptr(), batch as c_uint, MSG_WAITFORONE, std::ptr::null_mut()) }
}

impl PacketSink for Nfq {
    fn verdict(&self, queue: u16, id: u32, bytes: Option<&[u8]>) -> Result<(), String> {
        let fd = self.socks.iter().find(|(n, _)| *n == queue).map(|x| x.1).ok_or("unknown queue")?;
        let mut vb = VerdictBatch::new();
        let v = if bytes.is_some() { NF_ACCEPT } else { NF_DROP };
        vb.send(fd, &self.c.send_errors, &self.c.verdicts, &[(id, v, bytes)], queue);
        Ok(())
    }
    fn inject(&self, _hook: Hook, bytes: &[u8]) -> Result<(), String> {
        // A raw socket routes by the destination either way.
        if self.raw < 0 || bytes.len() < 20 {
            return Err("no raw socket".into());
        }
        let dst = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let sa = SockaddrIn { family: AF_INET as u16, port: 0, addr: dst.to_be(), zero: [0; 8] };
        let r = unsafe { sendto(self.raw, bytes.as_ptr() as *const c_void, bytes.len(), 0, &sa as *const _ as *const c_void, std::mem::size_of::<SockaddrIn>() as c_uint) };
        if r < 0 {
            Err(errno().to_string())
        } else {
            Ok(())
        }
    }
}

impl Backend for Nfq {
    fn name(&self) -> &'static str {
        "nfqueue"
    }
    fn stop(&self) {
        if self.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        let ths: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.threads));
        for t in ths {
            let _ = t.join();
        }
        // Closing the sockets unbinds the queues; queued packets are dropped by the kernel.
        lock(&self.owned).clear();
        if self.raw >= 0 {
            unsafe { close(self.raw) };
        }
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("received", self.c.received.load(Ordering::Relaxed)),
            ("verdicts", self.c.verdicts.load(Ordering::Relaxed)),
            ("sendErrors", self.c.send_errors.load(Ordering::Relaxed)),
            ("recvErrors", self.c.recv_errors.load(Ordering::Relaxed)),
            ("spinBatches", self.c.spin_batches.load(Ordering::Relaxed)),
            ("gsoPackets", self.c.gso_packets.load(Ordering::Relaxed)),
            ("gsoSegments", self.c.gso_segments.load(Ordering::Relaxed)),
            ("gsoFallbacks", self.c.gso_fallbacks.load(Ordering::Relaxed)),
        ]
    }
    fn queue_counters(&self) -> Vec<(u16, u64, u64)> {
        self.socks.iter().zip(self.per_queue.iter()).map(|((num, _), (r, v))| (*num, r.load(Ordering::Relaxed), v.load(Ordering::Relaxed))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Spin;
    use std::time::Duration;

    fn polls(s: &mut Spin, batches: usize) -> usize {
        (0..batches).filter(|_| s.after_batch().is_some()).count()
    }

    #[test]
    fn an_empty_poll_backs_off_up_to_64_batches_and_a_hit_resets_it() {
        let mut s = Spin { window: Duration::from_micros(50), skip: 0, backoff: 0 };
        assert!(s.after_batch().is_some(), "polls after a batch at first");
        let mut skipped = Vec::new();
        for _ in 0..8 {
            s.miss();
            let before = polls(&mut s, 200);
            skipped.push(200 - before);
            // Reset the count for the next round: after the skips, every batch polls again.
            s.skip = 0;
        }
        assert_eq!(skipped, vec![1, 2, 4, 8, 16, 32, 64, 64]);
        s.hit();
        s.miss();
        assert_eq!(s.skip, 1, "a hit resets the back-off");
    }

    #[test]
    fn a_zero_window_never_polls() {
        let mut s = Spin { window: Duration::from_micros(0), skip: 0, backoff: 0 };
        assert_eq!(polls(&mut s, 10), 0);
    }
}
