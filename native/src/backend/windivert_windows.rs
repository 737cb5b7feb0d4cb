//! Windows packet backend: WinDivert 2.2 (a WFP callout driver, EV-signed by its author) diverts
//! the agent's packets to this process and takes them back. The Windows twin of `nfq`.
//!
//! - WinDivert.dll is loaded at run time from the agent's install folder, by absolute path
//!   (LoadLibraryExW with LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32, never
//!   the search path); WinDivert.dll loads WinDivert64.sys from its own folder.
//! - Four handles (windivert_rules.rs): guard (drop), in, out, dns. One thread per receiving
//!   handle takes up to `batch` packets per WinDivertRecvEx; the engine lock is taken once per
//!   packet for the table work, crypto runs under the flow's own lock; the accepted packets of
//!   a batch go back in one WinDivertSendEx. A ticker thread runs expiry while idle.
//! - Checksums: outbound packets whose IPv4 header checksum was left to the NIC get it written
//!   before the engine checks it; everything sent goes with the three checksum bits set, so the
//!   driver keeps the checksums the engine wrote (compat mode's keyed checksum included).
//! - Fail closed: a packet the engine holds or drops is never re-injected as it came. When the
//!   handles close (stop, or the process dies), WinDivert re-injects what is still queued in
//!   the kernel unmodified (windivert_cleanup in the 2.2.2 driver); the guard handle, lower in
//!   priority and closed last, drops whatever of it is bound for the VIN range, and the service
//!   host keeps a second guard for as long as the service runs.
//! - Errors: WinDivertOpen's codes become sentences (windivert_abi::open_error_sentence).

use super::windivert_abi::{self as abi, Address, ADDRESS_LEN, BATCH_MAX, MTU_MAX};
use super::windivert_batch::{Pending, SendBatch};
use super::windivert_rules::{AgentDivert, HandleSpec, Role};
use super::Backend;
use crate::engine::{Handle, Hook, Reason, Verdict};
use crate::host::{now_ms, Host, PacketSink};
use crate::lock::lock;
use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

type WinHandle = *mut c_void;
const INVALID_HANDLE_VALUE: WinHandle = -1isize as WinHandle;
const LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR: u32 = 0x100;
const LOAD_LIBRARY_SEARCH_SYSTEM32: u32 = 0x800;
const ERROR_INSUFFICIENT_BUFFER: u32 = 122;
const ERROR_NO_DATA: u32 = 232;
const ERROR_PROC_NOT_FOUND: u32 = 127;

#[link(name = "kernel32")]
extern "system" {
    fn LoadLibraryExW(name: *const u16, file: WinHandle, flags: u32) -> WinHandle;
    fn GetProcAddress(module: WinHandle, name: *const c_char) -> *mut c_void;
    fn GetLastError() -> u32;
}

type OpenFn = unsafe extern "system" fn(*const c_char, u32, i16, u64) -> WinHandle;
type RecvExFn = unsafe extern "system" fn(WinHandle, *mut c_void, u32, *mut u32, u64, *mut Address, *mut u32, *mut c_void) -> i32;
type SendExFn = unsafe extern "system" fn(WinHandle, *const c_void, u32, *mut u32, u64, *const Address, u32, *mut c_void) -> i32;
type ShutdownFn = unsafe extern "system" fn(WinHandle, u32) -> i32;
type CloseFn = unsafe extern "system" fn(WinHandle) -> i32;
type SetParamFn = unsafe extern "system" fn(WinHandle, u32, u64) -> i32;
type CompileFn = unsafe extern "system" fn(*const c_char, u32, *mut c_char, u32, *mut *const c_char, *mut u32) -> i32;

/// WinDivert.dll's entry points. Loaded once per process and never unloaded.
struct Dll {
    open: OpenFn,
    recv_ex: RecvExFn,
    send_ex: SendExFn,
    shutdown: ShutdownFn,
    close: CloseFn,
    set_param: SetParamFn,
    compile: CompileFn,
}

static DLL: Mutex<Option<(String, Arc<Dll>)>> = Mutex::new(None);

fn wide(p: &Path) -> Vec<u16> {
    p.as_os_str().encode_wide().chain(std::iter::once(0)).collect()
}

/// Loads `<dir>\WinDivert.dll`; `dir` must be absolute (the agent's install folder).
fn load(dir: &str) -> Result<Arc<Dll>, String> {
    let folder = Path::new(dir);
    if !folder.is_absolute() {
        return Err(format!("the WinDivert folder must be an absolute path, got {:?}", dir));
    }
    let mut g = lock(&DLL);
    if let Some((d, dll)) = g.as_ref() {
        if d == dir {
            return Ok(dll.clone());
        }
        return Err(format!("WinDivert.dll is already loaded from {}, not {}", d, dir));
    }
    let path = folder.join("WinDivert.dll");
    let w = wide(&path);
    let m = unsafe { LoadLibraryExW(w.as_ptr(), std::ptr::null_mut(), LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32) };
    if m.is_null() {
        let code = unsafe { GetLastError() };
        return Err(abi::open_error_sentence(if code == 2 || code == 3 { 126 } else { code }, dir));
    }
    let sym = |name: &str| -> Result<*mut c_void, String> {
        let c = CString::new(name).map_err(|e| e.to_string())?;
        let p = unsafe { GetProcAddress(m, c.as_ptr()) };
        if p.is_null() {
            Err(abi::open_error_sentence(ERROR_PROC_NOT_FOUND, dir))
        } else {
            Ok(p)
        }
    };
    let dll = unsafe {
        Arc::new(Dll {
            open: std::mem::transmute::<*mut c_void, OpenFn>(sym("WinDivertOpen")?),
            recv_ex: std::mem::transmute::<*mut c_void, RecvExFn>(sym("WinDivertRecvEx")?),
            send_ex: std::mem::transmute::<*mut c_void, SendExFn>(sym("WinDivertSendEx")?),
            shutdown: std::mem::transmute::<*mut c_void, ShutdownFn>(sym("WinDivertShutdown")?),
            close: std::mem::transmute::<*mut c_void, CloseFn>(sym("WinDivertClose")?),
            set_param: std::mem::transmute::<*mut c_void, SetParamFn>(sym("WinDivertSetParam")?),
            compile: std::mem::transmute::<*mut c_void, CompileFn>(sym("WinDivertHelperCompileFilter")?),
        })
    };
    *g = Some((dir.to_string(), dll.clone()));
    Ok(dll)
}

/// Compiles every filter of `d` with WinDivert's own compiler (no driver needed): Ok, or the
/// first filter it rejects with WinDivert's message and position.
pub fn check_filters(dir: &str, d: &AgentDivert) -> Result<Vec<HandleSpec>, String> {
    let dll = load(dir)?;
    let specs = d.handles()?;
    for s in &specs {
        let c = CString::new(s.filter.as_str()).map_err(|e| e.to_string())?;
        let mut err: *const c_char = std::ptr::null();
        let mut pos: u32 = 0;
        let ok = unsafe { (dll.compile)(c.as_ptr(), abi::LAYER_NETWORK, std::ptr::null_mut(), 0, &mut err, &mut pos) };
        if ok == 0 {
            let msg = if err.is_null() { "?".to_string() } else { unsafe { std::ffi::CStr::from_ptr(err) }.to_string_lossy().into_owned() };
            return Err(format!("WinDivert rejects the {} filter at {}: {} ({})", s.role.name(), pos, msg, s.filter));
        }
    }
    Ok(specs)
}

#[derive(Debug, Clone)]
pub struct WinDivertConfig {
    /// Absolute folder holding WinDivert.dll and WinDivert64.sys.
    pub dir: String,
    pub divert: AgentDivert,
    /// Driver queue length per handle (packets).
    pub queue_len: u64,
    /// Packets per WinDivertRecvEx (1..=255).
    pub batch: usize,
}

struct Divert {
    spec: HandleSpec,
    h: WinHandle,
}
unsafe impl Send for Divert {}
unsafe impl Sync for Divert {}

pub struct WinDivert {
    dll: Arc<Dll>,
    handles: Vec<Divert>,
    stop: AtomicBool,
    closed: AtomicBool,
    pending: Mutex<Pending>,
    /// The address of the latest outbound VIN packet: the interface an engine-made reply
    /// (RST / ICMP to an application) is injected on.
    last_out: Mutex<Option<Address>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    tick: (Mutex<bool>, Condvar),
    received: AtomicU64,
    sent: AtomicU64,
    send_errors: AtomicU64,
    recv_errors: AtomicU64,
    lost: AtomicU64,
}

fn open(dll: &Dll, s: &HandleSpec, dir: &str, queue_len: u64) -> Result<WinHandle, String> {
    let c = CString::new(s.filter.as_str()).map_err(|e| e.to_string())?;
    let h = unsafe { (dll.open)(c.as_ptr(), abi::LAYER_NETWORK, s.priority, s.flags) };
    if h == INVALID_HANDLE_VALUE || h.is_null() {
        let code = unsafe { GetLastError() };
        return Err(abi::open_error_sentence(code, dir));
    }
    if s.flags & abi::FLAG_DROP == 0 {
        unsafe {
            (dll.set_param)(h, abi::PARAM_QUEUE_LENGTH, queue_len.clamp(abi::QUEUE_LENGTH_MIN, abi::QUEUE_LENGTH_MAX));
            (dll.set_param)(h, abi::PARAM_QUEUE_TIME, abi::QUEUE_TIME_MS);
            (dll.set_param)(h, abi::PARAM_QUEUE_SIZE, abi::QUEUE_SIZE_BYTES);
        }
    }
    Ok(h)
}

impl WinDivert {
    pub fn start(host: Arc<Host>, cfg: WinDivertConfig) -> Result<Arc<dyn Backend>, String> {
        let dll = load(&cfg.dir)?;
        let specs = cfg.divert.handles()?;
        let mut handles: Vec<Divert> = Vec::new();
        for s in specs {
            match open(&dll, &s, &cfg.dir, cfg.queue_len) {
                Ok(h) => handles.push(Divert { spec: s, h }),
                Err(e) => {
                    for d in handles.iter().rev() {
                        unsafe { (dll.close)(d.h) };
                    }
                    return Err(e);
                }
            }
        }
        let wd = Arc::new(WinDivert {
            dll,
            handles,
            stop: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            pending: Mutex::new(Pending::new(65536)),
            last_out: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            tick: (Mutex::new(false), Condvar::new()),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            recv_errors: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        });
        let as_backend: Arc<dyn Backend> = wd.clone();
        let batch = cfg.batch.clamp(1, BATCH_MAX);
        for q in 0..wd.handles.len() {
            if wd.handles[q].spec.role == Role::Guard {
                continue;
            }
            let (sh, me) = (host.clone(), wd.clone());
            let name = format!("gsra-wd-{}", wd.handles[q].spec.role.name());
            let t = std::thread::Builder::new().name(name).spawn(move || recv_thread(sh, me, q, batch)).map_err(|e| e.to_string());
            match t {
                Ok(t) => lock(&wd.threads).push(t),
                Err(e) => {
                    wd.stop();
                    return Err(e);
                }
            }
        }
        let (sh, me) = (host, wd.clone());
        let t = std::thread::Builder::new().name("gsra-wd-tick".into()).spawn(move || tick_thread(sh, me)).map_err(|e| e.to_string());
        match t {
            Ok(t) => lock(&wd.threads).push(t),
            Err(e) => {
                wd.stop();
                return Err(e);
            }
        }
        Ok(as_backend)
    }

    fn index_of(&self, role: Role) -> Option<usize> {
        self.handles.iter().position(|d| d.spec.role == role)
    }

    /// Sends a batch on handle `q`; per-packet failures are counted, the batch is emptied.
    fn send(&self, q: usize, b: &mut SendBatch) {
        if b.is_empty() {
            return;
        }
        let mut sent: u32 = 0;
        let ok = unsafe {
            (self.dll.send_ex)(
                self.handles[q].h,
                b.buf.as_ptr() as *const c_void,
                b.buf.len() as u32,
                &mut sent,
                0,
                b.addrs.as_ptr(),
                (b.addrs.len() * ADDRESS_LEN) as u32,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            self.send_errors.fetch_add(b.len() as u64, Ordering::Relaxed);
        } else {
            self.sent.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        b.clear();
    }
}

fn recv_thread(host: Arc<Host>, me: Arc<WinDivert>, q: usize, batch: usize) {
    let hook = me.handles[q].spec.hook;
    let outbound_vin = me.handles[q].spec.role == Role::Out;
    let h = me.handles[q].h;
    let cap = (batch * 2048).max(MTU_MAX);
    let mut buf = vec![0u8; cap];
    let mut addrs = vec![Address::default(); batch];
    let mut pkts: Vec<Vec<u8>> = (0..batch).map(|_| Vec::with_capacity(2048)).collect();
    let mut ids: Vec<u32> = Vec::with_capacity(batch);
    let mut verdicts: Vec<Option<bool>> = Vec::with_capacity(batch);
    let mut out = SendBatch::new(cap);
    while !me.stop.load(Ordering::Acquire) {
        let mut got: u32 = 0;
        let mut alen = (batch * ADDRESS_LEN) as u32;
        let ok = unsafe { (me.dll.recv_ex)(h, buf.as_mut_ptr() as *mut c_void, cap as u32, &mut got, 0, addrs.as_mut_ptr(), &mut alen, std::ptr::null_mut()) };
        if ok == 0 {
            let e = unsafe { GetLastError() };
            if e == ERROR_NO_DATA || me.stop.load(Ordering::Acquire) {
                break; // shut down and drained
            }
            me.recv_errors.fetch_add(1, Ordering::Relaxed);
            if e != ERROR_INSUFFICIENT_BUFFER {
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        let n = (alen as usize / ADDRESS_LEN).min(batch);
        let (ranges, lost) = abi::split_batch(&buf[..(got as usize).min(cap)], n);
        me.lost.fetch_add(lost as u64, Ordering::Relaxed);
        me.received.fetch_add(ranges.len() as u64, Ordering::Relaxed);
        // Ids first (a verdict may come from another thread as soon as the engine has a packet).
        ids.clear();
        {
            let mut p = lock(&me.pending);
            for i in 0..ranges.len() {
                ids.push(p.register(q as u16, addrs[i]));
            }
        }
        if outbound_vin && !ranges.is_empty() {
            *lock(&me.last_out) = Some(addrs[ranges.len() - 1]);
        }
        verdicts.clear();
        let now = now_ms();
        let mut panics = 0u64;
        for (i, (a, b)) in ranges.iter().enumerate() {
            let p = &mut pkts[i];
            p.clear();
            p.extend_from_slice(&buf[*a..*b]);
            abi::repair_outbound_ip_checksum(p, &addrs[i]);
            let v = host.process_queued(p, hook, Handle::Queued { queue: q as u16, id: ids[i] }, now);
            if v == Verdict::Drop(Reason::Panic) {
                panics += 1;
            }
            verdicts.push(match v {
                Verdict::Accept => Some(true),
                Verdict::Drop(_) => Some(false),
                Verdict::Held | Verdict::Punted(_) => None,
            });
        }
        // Answered now: forget their ids; send the accepted ones in one call.
        {
            let mut p = lock(&me.pending);
            for (i, v) in verdicts.iter().enumerate() {
                if v.is_some() {
                    p.take(q as u16, ids[i]);
                }
            }
        }
        for (i, v) in verdicts.iter().enumerate() {
            if *v == Some(true) {
                if !out.fits(pkts[i].len()) {
                    me.send(q, &mut out);
                }
                out.push(&pkts[i], &addrs[i]);
            }
        }
        me.send(q, &mut out);
        host.deliver(host.end_batch(now, panics, 64), Some(&*me));
    }
}

/// Expiry while no packet arrives (NFQUEUE's threads do this on their 100 ms receive timeout).
fn tick_thread(host: Arc<Host>, me: Arc<WinDivert>) {
    let (m, cv) = &me.tick;
    let mut stopped = lock(m);
    while !*stopped {
        stopped = match cv.wait_timeout(stopped, Duration::from_millis(100)) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
        if *stopped {
            break;
        }
        drop(stopped);
        host.deliver(host.end_batch(now_ms(), 0, 4096), Some(&*me));
        stopped = lock(m);
    }
}

impl PacketSink for WinDivert {
    fn verdict(&self, queue: u16, id: u32, bytes: Option<&[u8]>) -> Result<(), String> {
        let addr = lock(&self.pending).take(queue, id);
        match (addr, bytes) {
            (Some(a), Some(b)) if (queue as usize) < self.handles.len() => {
                let mut one = SendBatch::new(b.len());
                one.push(b, &a);
                self.send(queue as usize, &mut one);
                Ok(())
            }
            (None, Some(_)) => Err("no such diverted packet".into()),
            _ => Ok(()), // drop: WinDivert already took the packet off the wire
        }
    }
    fn inject(&self, hook: Hook, bytes: &[u8]) -> Result<(), String> {
        let like = (*lock(&self.last_out)).ok_or("no interface seen yet")?;
        let mut one = SendBatch::new(bytes.len());
        let q = if hook == Hook::Out {
            // A probe toward the gateway: outbound, on the interface the VIN traffic leaves by.
            one.push(bytes, &like.for_send());
            self.index_of(Role::Out).ok_or("no outbound handle")?
        } else {
            one.push(bytes, &Address::inbound_like(&like));
            self.index_of(Role::In).ok_or("no inbound handle")?
        };
        self.send(q, &mut one);
        Ok(())
    }
}

impl Backend for WinDivert {
    fn name(&self) -> &'static str {
        "windivert"
    }
    fn stop(&self) {
        if self.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wake the receivers: after a receive shutdown, a read on an empty queue fails with
        // ERROR_NO_DATA.
        for d in &self.handles {
            if d.spec.role != Role::Guard {
                unsafe { (self.dll.shutdown)(d.h, abi::SHUTDOWN_RECV) };
            }
        }
        *lock(&self.tick.0) = true;
        self.tick.1.notify_all();
        let ths: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.threads));
        for t in ths {
            let _ = t.join();
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Diverting handles first (what they still queue is re-injected and meets the guard),
        // the guard last.
        for d in self.handles.iter().rev() {
            unsafe { (self.dll.close)(d.h) };
        }
        lock(&self.pending).clear();
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("received", self.received.load(Ordering::Relaxed)),
            ("sent", self.sent.load(Ordering::Relaxed)),
            ("sendErrors", self.send_errors.load(Ordering::Relaxed)),
            ("recvErrors", self.recv_errors.load(Ordering::Relaxed)),
            ("lost", self.lost.load(Ordering::Relaxed)),
            ("pending", lock(&self.pending).len() as u64),
        ]
    }
}
