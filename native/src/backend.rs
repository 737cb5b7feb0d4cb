//! The boundary between the engine and the OS packet path: the `Backend` trait, and one
//! implementation per platform side by side — Linux NFQUEUE (`backend/nfq_linux.rs`) and Windows
//! WinDivert (`backend/windivert_windows.rs`, with its portable parts `windivert_abi.rs`,
//! `windivert_rules.rs` and `windivert_batch.rs`, unit-tested on Linux; see docs/windows.md).
//!
//! A backend is a batched receive/send loop around the host (host.rs). Each of its threads:
//! 1. takes a batch of packets from the OS (NFQUEUE: `recvmmsg`; WinDivert: `WinDivertRecvEx`),
//!    each with the hook it was taken at and a `Handle::Queued { queue, id }` that names it;
//! 2. runs every packet through `Host::process_queued` (table work under the engine lock, crypto
//!    under the flow's lock only) and keeps the accepted bytes and the drops;
//! 3. sends the batch's verdicts in one call (`sendmsg`; `WinDivertSendEx` re-injects the
//!    accepted packets and simply forgets the dropped ones);
//! 4. calls `Host::end_batch` then `Host::deliver` with itself as the `PacketSink`, which carries
//!    out what the engine decided for other packets meanwhile (released held packets, punt
//!    verdicts: `PacketSink::verdict` with the handle they were queued with; RST / ICMP answers:
//!    `PacketSink::inject`);
//! 5. when idle (a receive timeout), runs expiry the same way, so timeouts fire without traffic.
//!
//! A held or punted packet stays with its backend (NFQUEUE keeps it in the kernel by id;
//! WinDivert keeps the packet's address by id) until `PacketSink::verdict`. Fail closed: a backend
//! never passes a packet the engine did not accept, and stopping it drops what it still holds.
//!
//! Ownership runs one way: the N-API instance owns the host and the backend; the backend's
//! threads hold the host; the host holds no backend.

use crate::engine::Hook;
use crate::host::{Host, PacketSink};
use std::sync::Arc;

#[cfg(target_os = "linux")]
mod nfq_linux;
#[cfg(target_os = "linux")]
mod nfq_netlink_linux;
#[cfg(target_os = "linux")]
mod nfq_sender_linux;
#[cfg(target_os = "linux")]
mod raw_linux;
// The Windows backend's portable parts: the WINDIVERT_ADDRESS ABI, the agent's filters, batching.
pub mod windivert_abi;
pub mod windivert_batch;
pub mod windivert_rules;
#[cfg(windows)]
mod windivert_windows;
#[cfg(windows)]
pub use windivert_windows::{check_filters as check_windivert_filters, WinDivertConfig};

pub trait Backend: PacketSink {
    fn name(&self) -> &'static str;
    /// Stops the threads and releases the OS queues (packets still held there are dropped).
    fn stop(&self);
    /// Backend counters for `stats().backend`: (TypeScript name, value).
    fn counters(&self) -> Vec<(&'static str, u64)>;
    /// Per queue, for `stats().backend.queues`: (queue number, packets received, verdicts sent).
    fn queue_counters(&self) -> Vec<(u16, u64, u64)> {
        Vec::new()
    }
}

/// One queue and the hook its packets are taken at.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub num: u16,
    pub hook: Hook,
}

#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub queues: Vec<QueueSpec>,
    /// Kernel queue length.
    pub max_len: u32,
    /// Packets per receive call.
    pub batch: usize,
    /// After a batch, poll for up to this many µs before blocking (0: block at once).
    pub spin_us: u32,
    /// Take GSO super-packets whole on the queues at hook `out` (segmented in user space).
    pub gso: bool,
    /// A second thread per queue sends the verdicts (backend/nfq_sender_linux.rs; not on F_GSO queues).
    pub verdict_thread: bool,
}

/// Starts the NFQUEUE backend for `host` (Linux).
pub fn start(host: Arc<Host>, cfg: BackendConfig) -> Result<Arc<dyn Backend>, String> {
    #[cfg(target_os = "linux")]
    {
        nfq_linux::Nfq::start(host, cfg)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (host, cfg);
        Err("NFQUEUE is the Linux backend; on Windows the agent starts WinDivert (start_windivert)".into())
    }
}

/// Starts the Windows WinDivert backend for `host` (the agent's four handles).
#[cfg(windows)]
pub fn start_windivert(host: Arc<Host>, cfg: WinDivertConfig) -> Result<Arc<dyn Backend>, String> {
    windivert_windows::WinDivert::start(host, cfg)
}
