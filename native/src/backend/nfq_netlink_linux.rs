//! The NFQUEUE netlink protocol, written by hand (no libnetfilter_queue): binding and configuring
//! a queue, the verdict messages of a batch gathered into one sendmsg(), and parsing a packet
//! message. Used by nfq_linux.rs (the queue threads) and raw_linux.rs (the GSO segments' raw
//! socket shares the libc declarations).

use std::os::raw::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

#[repr(C)]
pub(super) struct SockaddrNl {
    pub(super) family: u16,
    pub(super) pad: u16,
    pub(super) pid: u32,
    pub(super) groups: u32,
}
#[repr(C)]
pub(super) struct SockaddrIn {
    pub(super) family: u16,
    pub(super) port: u16,
    pub(super) addr: u32,
    pub(super) zero: [u8; 8],
}
#[repr(C)]
pub(super) struct Iovec {
    pub(super) base: *mut c_void,
    pub(super) len: usize,
}
#[repr(C)]
pub(super) struct Msghdr {
    pub(super) name: *mut c_void,
    pub(super) namelen: c_uint,
    pub(super) iov: *mut Iovec,
    pub(super) iovlen: usize,
    pub(super) control: *mut c_void,
    pub(super) controllen: usize,
    pub(super) flags: c_int,
}
#[repr(C)]
pub(super) struct Mmsghdr {
    pub(super) hdr: Msghdr,
    pub(super) len: c_uint,
}
#[repr(C)]
pub(super) struct Timeval {
    pub(super) sec: i64,
    pub(super) usec: i64,
}

extern "C" {
    pub(super) fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int;
    pub(super) fn bind(fd: c_int, addr: *const c_void, len: c_uint) -> c_int;
    pub(super) fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: c_uint) -> c_int;
    pub(super) fn sendmsg(fd: c_int, msg: *const Msghdr, flags: c_int) -> isize;
    pub(super) fn sendto(fd: c_int, buf: *const c_void, len: usize, flags: c_int, addr: *const c_void, alen: c_uint) -> isize;
    pub(super) fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize;
    pub(super) fn recvmmsg(fd: c_int, msgs: *mut Mmsghdr, vlen: c_uint, flags: c_int, timeout: *mut c_void) -> c_int;
    pub(super) fn close(fd: c_int) -> c_int;
}

pub(super) const AF_NETLINK: c_int = 16;
pub(super) const AF_INET: c_int = 2;
pub(super) const SOCK_RAW: c_int = 3;
pub(super) const SOCK_CLOEXEC: c_int = 0o2000000;
pub(super) const NETLINK_NETFILTER: c_int = 12;
pub(super) const SOL_SOCKET: c_int = 1;
pub(super) const SO_SNDBUFFORCE: c_int = 32;
pub(super) const SO_RCVBUFFORCE: c_int = 33;
pub(super) const SO_RCVTIMEO: c_int = 20;
pub(super) const SOL_NETLINK: c_int = 270;
pub(super) const NETLINK_NO_ENOBUFS: c_int = 5;
pub(super) const MSG_WAITFORONE: c_int = 0x10000;
pub(super) const IPPROTO_RAW: c_int = 255;

pub(super) const NLM_F_REQUEST: u16 = 1;
pub(super) const NLM_F_ACK: u16 = 4;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NFNL_SUBSYS_QUEUE: u16 = 3;
pub(super) const NFQNL_MSG_PACKET: u16 = 0;
pub(super) const NFQNL_MSG_VERDICT: u16 = 1;
pub(super) const NFQNL_MSG_CONFIG: u16 = 2;
pub(super) const NFQA_CFG_CMD: u16 = 1;
pub(super) const NFQA_CFG_PARAMS: u16 = 2;
pub(super) const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
pub(super) const NFQNL_CFG_CMD_BIND: u8 = 1;
pub(super) const NFQNL_COPY_PACKET: u8 = 2;
pub(super) const NFQA_PACKET_HDR: u16 = 1;
pub(super) const NFQA_VERDICT_HDR: u16 = 2;
pub(super) const NFQA_PAYLOAD: u16 = 10;
pub(super) const NFQA_MARK: u16 = 3;
pub(super) const NFQA_SKB_INFO: u16 = 14;
pub(super) const NFQA_CFG_MASK: u16 = 4;
pub(super) const NFQA_CFG_FLAGS: u16 = 5;
pub(super) const NFQA_CFG_F_GSO: u32 = 4;
/// NFQA_SKB_INFO flags: the L4 checksum is only the pseudo-header's (CHECKSUM_PARTIAL); a GSO packet.
pub(super) const NFQA_SKB_CSUMNOTREADY: u32 = 1;
pub(super) const NFQA_SKB_GSO: u32 = 2;
pub(super) const NF_DROP: u32 = 0;
pub(super) const NF_ACCEPT: u32 = 1;
/// Runs the hook again: the packet comes back to the queue (segmented, once F_GSO is off).
pub(super) const NF_REPEAT: u32 = 4;

pub(super) const SLOT: usize = 65536 + 4096;
pub(super) const FLUSH_BYTES: usize = 200 * 1024;
pub(super) const MAX_IOV: usize = 900;

pub(super) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

pub(super) fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// Builds one netlink message: nlmsghdr + nfgenmsg + attributes.
pub(super) fn nl_msg(msg: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut b = vec![0u8; 20];
    for (t, v) in attrs {
        let l = 4 + v.len();
        b.extend_from_slice(&(l as u16).to_ne_bytes());
        b.extend_from_slice(&t.to_ne_bytes());
        b.extend_from_slice(v);
        while b.len() % 4 != 0 {
            b.push(0);
        }
    }
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg).to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b[16] = family;
    b[17] = 0;
    b[18..20].copy_from_slice(&res_id.to_be_bytes());
    b
}

pub(super) struct Sock(pub(super) c_int);
impl Drop for Sock {
    fn drop(&mut self) {
        unsafe { close(self.0) };
    }
}

/// Binds queue `num` on a new netlink socket, copying whole packets, with a kernel queue of
/// `max_len`. With `gso`, asks for GSO super-packets unsegmented (NFQA_CFG_F_GSO); the second
/// value says whether the kernel took that (a kernel without it keeps segmenting).
pub(super) fn open_queue(num: u16, max_len: u32, gso: bool) -> Result<(Sock, bool), String> {
    unsafe {
        let fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
        if fd < 0 {
            return Err(format!("netlink socket: {}", errno()));
        }
        let s = Sock(fd);
        let sa = SockaddrNl { family: AF_NETLINK as u16, pad: 0, pid: 0, groups: 0 };
        if bind(fd, &sa as *const _ as *const c_void, std::mem::size_of::<SockaddrNl>() as c_uint) < 0 {
            return Err(format!("netlink bind: {}", errno()));
        }
        let big: c_int = 16 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big as *const _ as *const c_void, 4);
        let sb: c_int = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sb as *const _ as *const c_void, 4);
        let one: c_int = 1;
        setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one as *const _ as *const c_void, 4);
        // Config: BIND; copy whole packets; queue length. Never F_FAIL_OPEN; F_GSO on request.
        let cmd = [NFQNL_CFG_CMD_BIND, 0, 0, AF_INET as u8];
        let mut params = [0u8; 5];
        params[..4].copy_from_slice(&0xffffu32.to_be_bytes());
        params[4] = NFQNL_COPY_PACKET;
        let ml = max_len.to_be_bytes();
        let msgs = [
            nl_msg(NFQNL_MSG_CONFIG, NLM_F_ACK, 1, 0, num, &[(NFQA_CFG_CMD, &cmd)]),
            nl_msg(NFQNL_MSG_CONFIG, NLM_F_ACK, 2, 0, num, &[(NFQA_CFG_PARAMS, &params)]),
            nl_msg(NFQNL_MSG_CONFIG, NLM_F_ACK, 3, 0, num, &[(NFQA_CFG_QUEUE_MAXLEN, &ml)]),
        ];
        let mut sa_k = SockaddrNl { family: AF_NETLINK as u16, pad: 0, pid: 0, groups: 0 };
        for m in msgs.iter() {
            config(fd, &mut sa_k, m).map_err(|e| format!("NFQUEUE config for queue {} failed: {}", num, e))?;
        }
        let gso = gso && config(fd, &mut sa_k, &gso_msg(num, true, NLM_F_ACK)).is_ok();
        let tv = Timeval { sec: 0, usec: 100_000 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv as *const _ as *const c_void, std::mem::size_of::<Timeval>() as c_uint);
        Ok((s, gso))
    }
}

/// The config message that turns F_GSO on or off for a queue.
fn gso_msg(num: u16, on: bool, flags: u16) -> Vec<u8> {
    let mask = NFQA_CFG_F_GSO.to_be_bytes();
    let val = (if on { NFQA_CFG_F_GSO } else { 0 }).to_be_bytes();
    nl_msg(NFQNL_MSG_CONFIG, flags, 4, 0, num, &[(NFQA_CFG_MASK, &mask), (NFQA_CFG_FLAGS, &val)])
}

/// Turns F_GSO on or off on a bound queue, from its own thread (no ACK asked: the queue thread
/// reads the socket and skips what is not a packet).
pub(super) fn set_gso(fd: c_int, num: u16, on: bool) -> bool {
    let m = gso_msg(num, on, 0);
    let sa = SockaddrNl { family: AF_NETLINK as u16, pad: 0, pid: 0, groups: 0 };
    unsafe { sendto(fd, m.as_ptr() as *const c_void, m.len(), 0, &sa as *const _ as *const c_void, std::mem::size_of::<SockaddrNl>() as c_uint) >= 0 }
}

/// Sends one config message and reads its ACK.
unsafe fn config(fd: c_int, sa_k: &mut SockaddrNl, m: &[u8]) -> Result<(), std::io::Error> {
    if sendto(fd, m.as_ptr() as *const c_void, m.len(), 0, sa_k as *mut _ as *const c_void, std::mem::size_of::<SockaddrNl>() as c_uint) < 0 {
        return Err(errno());
    }
    let mut r = [0u8; 512];
    let n = recv(fd, r.as_mut_ptr() as *mut c_void, r.len(), 0);
    if n < 20 {
        return Err(errno());
    }
    if u16::from_ne_bytes([r[4], r[5]]) == NLMSG_ERROR {
        let e = i32::from_ne_bytes([r[16], r[17], r[18], r[19]]);
        if e != 0 {
            return Err(std::io::Error::from_raw_os_error(-e));
        }
    }
    Ok(())
}

/// The verdict message header for one packet (36 bytes with the payload attribute header).
pub(super) fn verdict_header(queue: u16, id: u32, verdict: u32, payload_len: Option<usize>) -> ([u8; 36], usize) {
    let mut h = [0u8; 36];
    let hl = if payload_len.is_some() { 36 } else { 32 };
    let total = hl + payload_len.map_or(0, align4);
    h[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
    h[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT).to_ne_bytes());
    h[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    h[16] = 0;
    h[18..20].copy_from_slice(&queue.to_be_bytes());
    h[20..22].copy_from_slice(&12u16.to_ne_bytes());
    h[22..24].copy_from_slice(&NFQA_VERDICT_HDR.to_ne_bytes());
    h[24..28].copy_from_slice(&verdict.to_be_bytes());
    h[28..32].copy_from_slice(&id.to_be_bytes());
    if let Some(pl) = payload_len {
        h[32..34].copy_from_slice(&((4 + pl) as u16).to_ne_bytes());
        h[34..36].copy_from_slice(&NFQA_PAYLOAD.to_ne_bytes());
    }
    (h, hl)
}

pub(super) static PAD: [u8; 4] = [0; 4];

/// Gathers verdicts for one sendmsg.
pub(super) struct VerdictBatch {
    heads: Vec<([u8; 36], usize)>,
    iov: Vec<Iovec>,
    bytes: usize,
}

impl VerdictBatch {
    pub(super) fn new() -> VerdictBatch {
        VerdictBatch { heads: Vec::with_capacity(256), iov: Vec::with_capacity(1024), bytes: 0 }
    }
    /// Sends the verdicts `items` — (packet id, verdict, the packet's new bytes) — in one
    /// sendmsg (more past 200 KiB).
    pub(super) fn send(&mut self, fd: c_int, errs: &AtomicU64, count: &AtomicU64, items: &[(u32, u32, Option<&[u8]>)], queue: u16) {
        self.heads.clear();
        for (id, v, p) in items {
            self.heads.push(verdict_header(queue, *id, *v, p.map(|x| x.len())));
        }
        self.iov.clear();
        self.bytes = 0;
        for (i, (_, _, p)) in items.iter().enumerate() {
            let hp = self.heads[i].0.as_ptr();
            let hl = self.heads[i].1;
            let need = hl + p.map_or(0, |x| align4(x.len()));
            if self.bytes + need > FLUSH_BYTES || self.iov.len() + 3 > MAX_IOV {
                self.flush(fd, errs);
            }
            self.iov.push(Iovec { base: hp as *mut c_void, len: hl });
            if let Some(p) = p {
                self.iov.push(Iovec { base: p.as_ptr() as *mut c_void, len: p.len() });
                let pad = align4(p.len()) - p.len();
                if pad > 0 {
                    self.iov.push(Iovec { base: PAD.as_ptr() as *mut c_void, len: pad });
                }
            }
            self.bytes += need;
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.flush(fd, errs);
    }
    pub(super) fn flush(&mut self, fd: c_int, errs: &AtomicU64) {
        if self.iov.is_empty() {
            return;
        }
        let mut sa = SockaddrNl { family: AF_NETLINK as u16, pad: 0, pid: 0, groups: 0 };
        let m = Msghdr {
            name: &mut sa as *mut _ as *mut c_void,
            namelen: std::mem::size_of::<SockaddrNl>() as c_uint,
            iov: self.iov.as_mut_ptr(),
            iovlen: self.iov.len(),
            control: std::ptr::null_mut(),
            controllen: 0,
            flags: 0,
        };
        if unsafe { sendmsg(fd, &m, 0) } < 0 {
            errs.fetch_add(1, Ordering::Relaxed);
        }
        self.iov.clear();
        self.bytes = 0;
    }
}

/// A packet message: the packet's id, its bytes, its mark and its NFQA_SKB_INFO flags.
pub(super) struct PacketMsg<'a> {
    pub(super) id: u32,
    pub(super) payload: &'a [u8],
    pub(super) mark: u32,
    pub(super) info: u32,
}

/// Parses a packet message.
pub(super) fn parse_packet_msg(m: &[u8]) -> Option<PacketMsg<'_>> {
    if m.len() < 20 {
        return None;
    }
    let mut i = 20;
    let mut id = None;
    let mut payload = None;
    let (mut mark, mut info) = (0, 0);
    let be = |v: &[u8]| u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    while i + 4 <= m.len() {
        let l = u16::from_ne_bytes([m[i], m[i + 1]]) as usize;
        let t = u16::from_ne_bytes([m[i + 2], m[i + 3]]) & 0x3fff;
        if l < 4 || i + l > m.len() {
            break;
        }
        let v = &m[i + 4..i + l];
        match t {
            NFQA_PACKET_HDR if v.len() >= 4 => id = Some(be(v)),
            NFQA_MARK if v.len() >= 4 => mark = be(v),
            NFQA_SKB_INFO if v.len() >= 4 => info = be(v),
            NFQA_PAYLOAD => payload = Some(v),
            _ => {}
        }
        i += align4(l);
    }
    Some(PacketMsg { id: id?, payload: payload?, mark, info })
}
