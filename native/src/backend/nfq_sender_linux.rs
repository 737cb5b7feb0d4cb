//! A queue's verdict sender (`verdict_thread`): a second thread per queue that sends the verdicts
//! of a batch, so the queue's reader can take and process the next batch meanwhile. The kernel
//! runs the rest of an accepted packet's path (routing, conntrack, the next hops) inside the
//! verdict's sendmsg(); without this thread the reader waits for all of it.
//!
//! Batches go to the sender in order over a channel and come back empty over another, so each
//! queue has a fixed set of buffers (`DEPTH`) and a reader that is `DEPTH` batches ahead waits:
//! verdicts leave in the order the packets came, and memory stays bounded. A batch the reader had
//! to wait for, with nothing in flight, is sent by the reader itself (`inline`): request/response
//! traffic would otherwise pay a second thread wake-up per pass (measured: p50 0.18 → 0.22 ms,
//! docs/performance.md).
//! Not used on a queue with F_GSO, whose segments leave from the reader (they must not pass
//! earlier verdicts).

use super::nfq_linux::Nfq;
use super::nfq_netlink_linux::{VerdictBatch, SLOT};
use std::os::raw::c_int;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Batches in flight per queue (one being filled, the others being sent or waiting).
const DEPTH: usize = 3;

/// One batch's verdicts: (packet id, verdict, slot in `pkts` of the bytes to pass).
pub(super) struct Outgoing {
    pub(super) results: Vec<(u32, u32, Option<usize>)>,
    pub(super) pkts: Vec<Vec<u8>>,
}

impl Outgoing {
    /// A placeholder with no buffers (while the real one is being swapped).
    pub(super) fn empty() -> Outgoing {
        Outgoing { results: Vec::new(), pkts: Vec::new() }
    }
    pub(super) fn new(batch: usize) -> Outgoing {
        Outgoing { results: Vec::with_capacity(batch), pkts: (0..batch).map(|_| Vec::with_capacity(SLOT)).collect() }
    }
}

pub(super) struct Sender2 {
    full: Option<SyncSender<Outgoing>>,
    empty: Receiver<Outgoing>,
    thread: Option<JoinHandle<()>>,
    /// Batches handed over and not yet back.
    in_flight: usize,
    /// Empty batches back from the sender.
    spare: Vec<Outgoing>,
}

impl Sender2 {
    /// Starts the sender of queue `queue` on netlink socket `fd`.
    pub(super) fn start(fd: c_int, queue: u16, batch: usize, me: Arc<Nfq>) -> Result<Sender2, String> {
        let (full_tx, full_rx) = sync_channel::<Outgoing>(DEPTH);
        let (empty_tx, empty_rx): (Sender<Outgoing>, Receiver<Outgoing>) = channel();
        let thread = std::thread::Builder::new()
            .name(format!("gsra-nfq{}v", queue))
            .spawn(move || {
                let mut vb = VerdictBatch::new();
                while let Ok(mut o) = full_rx.recv() {
                    {
                        let items: Vec<(u32, u32, Option<&[u8]>)> = o.results.iter().map(|&(id, v, s)| (id, v, s.map(|s| &o.pkts[s][..]))).collect();
                        vb.send(fd, &me.c.send_errors, &me.c.verdicts, &items, queue);
                    }
                    o.results.clear();
                    if empty_tx.send(o).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Sender2 { full: Some(full_tx), empty: empty_rx, thread: Some(thread), in_flight: 0, spare: (0..DEPTH - 1).map(|_| Outgoing::new(batch)).collect() })
    }

    /// Whether the reader may send this batch itself: nothing is in flight (so its verdicts cannot
    /// pass earlier ones) and the reader `waited` for the batch (the queue was empty: it has time
    /// to forward, and a hand-over would only add a thread wake-up — request/response traffic
    /// pays that on every pass). Back-to-back bulk batches are handed over.
    pub(super) fn inline(&mut self, waited: bool) -> bool {
        while self.in_flight > 0 {
            match self.empty.try_recv() {
                Ok(o) => {
                    self.in_flight -= 1;
                    self.spare.push(o);
                }
                Err(_) => break,
            }
        }
        self.in_flight == 0 && waited
    }

    /// Hands a filled batch over and returns an empty one (waits while `DEPTH` are in flight).
    pub(super) fn swap(&mut self, filled: Outgoing) -> Outgoing {
        let batch = filled.pkts.len();
        if let Some(tx) = &self.full {
            if tx.send(filled).is_ok() {
                self.in_flight += 1;
                if let Some(o) = self.spare.pop() {
                    return o;
                }
                if let Ok(o) = self.empty.recv() {
                    self.in_flight -= 1;
                    return o;
                }
            }
        }
        // The sender is gone (it only stops when the channel closes): a fresh buffer.
        Outgoing::new(batch)
    }
}

impl Drop for Sender2 {
    fn drop(&mut self) {
        // Closing the channel ends the sender after the batches still queued.
        self.full.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
