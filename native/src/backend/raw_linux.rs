//! The raw IPv4 socket a queue thread sends the protected segments of a GSO super-packet with,
//! all of them in one sendmmsg() (docs/pccom.md §12).
//!
//! Why not the verdict: a verdict carries one packet per queued packet, and the kernel keeps the
//! queued skb's GSO size when a verdict replaces its bytes (`nfqnl_mangle`), so it would cut the
//! protected bytes again after the verdict and no segment would carry its own MAC. So the
//! segments are sent as new packets and the super-packet is dropped.
//!
//! What the segments keep of the original: the addresses the engine wrote (the socket routes by
//! the destination, as the kernel re-routes a verdict's rewritten packet) and its mark (SO_MARK,
//! set when it changes, so policy routing by mark sees the same value). They enter the host's
//! OUTPUT path where a verdict would have resumed after the raw table: conntrack sees the same
//! tuple as for the flow's other packets. At the gateway that is OUTPUT instead of FORWARD (see
//! docs/gateway.md), and the TTL is not decremented a second time.

use super::nfq_netlink_linux::*;
use std::os::raw::{c_int, c_uint, c_void};

extern "C" {
    fn sendmmsg(fd: c_int, msgs: *mut Mmsghdr, vlen: c_uint, flags: c_int) -> c_int;
}

const SO_MARK: c_int = 36;

pub(super) struct RawSender {
    fd: Sock,
    mark: u32,
    iovs: Vec<Iovec>,
    addrs: Vec<SockaddrIn>,
    msgs: Vec<Mmsghdr>,
}

// The raw pointers in the scratch vectors are only set and used within `send`.
unsafe impl Send for RawSender {}

impl RawSender {
    pub(super) fn open() -> Result<RawSender, std::io::Error> {
        let fd = unsafe { socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW) };
        if fd < 0 {
            return Err(errno());
        }
        let s = Sock(fd);
        let sb: c_int = 4 << 20;
        unsafe { setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sb as *const _ as *const c_void, 4) };
        Ok(RawSender { fd: s, mark: 0, iovs: Vec::new(), addrs: Vec::new(), msgs: Vec::new() })
    }

    /// Sends the IPv4 packets `segs` in order, each to its destination address, with `mark`.
    /// Err((sent, error)) at the first one the kernel refused.
    pub(super) fn send(&mut self, segs: &[&[u8]], mark: u32) -> Result<(), (usize, std::io::Error)> {
        if mark != self.mark {
            if unsafe { setsockopt(self.fd.0, SOL_SOCKET, SO_MARK, &mark as *const _ as *const c_void, 4) } < 0 {
                return Err((0, errno()));
            }
            self.mark = mark;
        }
        self.iovs.clear();
        self.addrs.clear();
        self.msgs.clear();
        for s in segs {
            if s.len() < 20 {
                return Err((0, std::io::Error::from_raw_os_error(22)));
            }
            let dst = u32::from_be_bytes([s[16], s[17], s[18], s[19]]);
            self.iovs.push(Iovec { base: s.as_ptr() as *mut c_void, len: s.len() });
            self.addrs.push(SockaddrIn { family: AF_INET as u16, port: 0, addr: dst.to_be(), zero: [0; 8] });
        }
        for i in 0..segs.len() {
            let hdr = Msghdr {
                name: &mut self.addrs[i] as *mut _ as *mut c_void,
                namelen: std::mem::size_of::<SockaddrIn>() as c_uint,
                iov: &mut self.iovs[i] as *mut Iovec,
                iovlen: 1,
                control: std::ptr::null_mut(),
                controllen: 0,
                flags: 0,
            };
            self.msgs.push(Mmsghdr { hdr, len: 0 });
        }
        let mut done = 0;
        while done < self.msgs.len() {
            let n = unsafe { sendmmsg(self.fd.0, self.msgs[done..].as_mut_ptr(), (self.msgs.len() - done) as c_uint, 0) };
            if n <= 0 {
                return Err((done, errno()));
            }
            done += n as usize;
        }
        Ok(())
    }
}
