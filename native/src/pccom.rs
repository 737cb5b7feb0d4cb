//! The PCCOM data-plane construction, wire format 2 (see docs/pccom.md for the normative
//! description).
//!
//! Secure mode, both protocols: deterministic authenticated encryption with a synthetic IV (SIV,
//! RFC 5297 style). T = HMAC-SHA256(macKey, M)[..12], where M covers the header fields, the
//! connection (TCP: both ISNs) or the datagram counter (UDP), and the PLAINTEXT; the payload is
//! then AES-128-CTR encrypted with the counter blocks T || be32(i). T is the MAC on the wire, so the
//! overhead stays 16 bytes (TCP option) or 20 (UDP trailer). The receiver decrypts with the T it
//! received, recomputes T over the plaintext and compares in constant time before anything is
//! delivered. Nobody but the encryptor chooses a keystream, and one keystream never covers two
//! different plaintexts (they would need the same T).
//! TCP: the MAC sits in an RFC 6994 experimental option (kind 253, ExID 0x4753).
//! UDP: 20-byte trailer d(2) || ctr(6) || T(12).
//! Compat: the paper's 16-bit keyed checksum, no option, no trailer (weak, explicit per flow).

use crate::crypto::{aes_ctr_at, aes_ctr_siv, ct_eq, hmac_sha256, SIV_LEN};
use crate::pkt::*;

pub const OPT_KIND: u8 = 253;
pub const EXID: [u8; 2] = [0x47, 0x53];
pub const MAC_LEN: usize = SIV_LEN;
/// Option on every TCP segment except the initial SYN.
pub const TCP_OPT_LEN: usize = 16;
/// Option on the initial SYN (SYN without ACK): also carries version, flags and port d.
pub const TCP_SYN_OPT_LEN: usize = 20;
/// Wire format 2: the synthetic-IV construction.
pub const OPT_VERSION: u8 = 2;
/// Option of a probe (docs/pccom.md §6.1): a bare ACK the gateway verifies, re-binds on if it is
/// newer, and consumes; carries version, the probe flag and a 48-bit probe number.
pub const TCP_PROBE_OPT_LEN: usize = 24;
/// The option's flags byte on a probe.
pub const OPT_FLAG_PROBE: u8 = 0x01;
pub const UDP_TRAILER_LEN: usize = 20;
/// Domain bytes of the MAC input: TCP and UDP of wire format 2, and the compat checksum.
pub const DOMAIN_TCP: u8 = 0x11;
pub const DOMAIN_UDP: u8 = 0x12;
pub const DOMAIN_COMPAT: u8 = 0x03;
pub const UDP_CTR_MAX: u64 = (1u64 << 48) - 1;
/// Packets one direction of a flow protects under one key, at most: with 96-bit synthetic IVs the
/// chance that two of them collide stays below 2^-25 (birthday bound q^2 / 2^97, docs/pccom.md §3).
pub const PACKET_LIMIT: u64 = 1u64 << 36;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PErr {
    /// No room for the option in the TCP header, or the packet would exceed 65535 bytes.
    NoRoom,
    Crypto,
    CounterExhausted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VErr {
    NoMac,
    BadMac,
    Replay,
    Malformed,
    Crypto,
}

impl VErr {
    pub fn as_str(&self) -> &'static str {
        match self {
            VErr::NoMac => "no-mac",
            VErr::BadMac => "bad-mac",
            VErr::Replay => "replay",
            VErr::Malformed => "malformed",
            VErr::Crypto => "crypto",
        }
    }
}

/// Keys for one direction of one flow, as handed over by TypeScript.
#[derive(Clone)]
pub struct DirKeys {
    pub enc: [u8; 16],
    pub mac: [u8; 32],
    pub salt: [u8; 8],
}

impl Drop for DirKeys {
    fn drop(&mut self) {
        // best effort wipe
        for b in self.enc.iter_mut() {
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        for b in self.mac.iter_mut() {
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// The PIT of one direction: its raw keys, nothing else. AES and HMAC run on this thread's
/// contexts, keyed for the call (crypto/per_thread.rs), so a flow costs no library context.
pub struct Dir {
    keys: DirKeys,
}

impl Dir {
    pub fn new(k: &DirKeys) -> Result<Dir, &'static str> {
        Ok(Dir { keys: k.clone() })
    }
    /// The synthetic IV: HMAC-SHA256(macKey, parts...)[..12].
    fn siv(&mut self, parts: &[&[u8]]) -> Result<[u8; MAC_LEN], ()> {
        let out = hmac_sha256(&self.keys.mac, parts).ok_or(())?;
        let mut t = [0u8; MAC_LEN];
        t.copy_from_slice(&out[..MAC_LEN]);
        Ok(t)
    }
    /// Encrypts or decrypts `data` in place under the synthetic IV `t`.
    fn crypt_siv(&self, t: &[u8; SIV_LEN], data: &mut [u8]) -> bool {
        aes_ctr_siv(&self.keys.enc, t, data)
    }
}

/// Sequence number extension (RFC 5925 §6.2 style) for one direction's byte stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeqTrack {
    pub init: bool,
    pub sne: u32,
    pub high: u32,
}

impl SeqTrack {
    /// The 64-bit extended value of `seq`, relative to the highest sequence number seen.
    pub fn extend(&self, seq: u32) -> u64 {
        if !self.init {
            return seq as u64;
        }
        let ahead = (seq.wrapping_sub(self.high) as i32) >= 0;
        let sne = if ahead {
            if seq < self.high {
                self.sne.wrapping_add(1)
            } else {
                self.sne
            }
        } else if seq > self.high {
            self.sne.wrapping_sub(1)
        } else {
            self.sne
        };
        ((sne as u64) << 32) | seq as u64
    }
    /// Records an accepted segment's extended sequence number.
    pub fn update(&mut self, ext: u64) {
        let cur = ((self.sne as u64) << 32) | self.high as u64;
        if !self.init || ext > cur {
            self.init = true;
            self.sne = (ext >> 32) as u32;
            self.high = ext as u32;
        }
    }
}

/// RFC 6479-style anti-replay window: 16 x 64-bit words, 960 counters guaranteed.
#[derive(Debug, Default, Clone)]
pub struct Replay {
    top: u64,
    bits: [u64; 16],
}

pub const REPLAY_WINDOW: u64 = 1024 - 64;

impl Replay {
    /// The highest counter accepted (0: none yet): a datagram above it is newer than anything
    /// accepted, which is what may move a binding (docs/pccom.md §6.1).
    pub fn top(&self) -> u64 {
        self.top
    }

    pub fn check(&self, c: u64) -> bool {
        if c == 0 {
            return false;
        }
        if c > self.top {
            return true;
        }
        if self.top - c >= REPLAY_WINDOW {
            return false;
        }
        self.bits[((c / 64) % 16) as usize] & (1u64 << (c % 64)) == 0
    }
    pub fn update(&mut self, c: u64) {
        if c > self.top {
            let old = self.top / 64;
            let new = c / 64;
            let n = std::cmp::min(new - old, 16);
            for i in 1..=n {
                self.bits[((old + i) % 16) as usize] = 0;
            }
            self.top = c;
        }
        self.bits[((c / 64) % 16) as usize] |= 1u64 << (c % 64);
    }
}

/// Where a TCP segment sits, as the MAC covers it: the 64-bit extended sequence and
/// acknowledgment numbers (§4.3; `ext_ack` 0 when ACK is clear) and the ISNs of the sender's and
/// the receiver's streams (the receiver's is 0 on an initial SYN, and until it is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPos {
    pub ext_seq: u64,
    pub ext_ack: u64,
    pub isn_sender: u32,
    pub isn_receiver: u32,
}

/// Result of a successful TCP verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOk {
    /// The original destination port, present on the initial SYN only.
    pub d: Option<u16>,
    /// A probe's number (§6.1): the segment is a probe, to be consumed.
    pub probe: Option<u64>,
}

fn clamp_mss(opts: &mut [u8], by: u16) {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return,
            1 => i += 1,
            k => {
                if i + 1 >= opts.len() {
                    return;
                }
                let l = opts[i + 1] as usize;
                if l < 2 || i + l > opts.len() {
                    return;
                }
                if k == 2 && l == 4 {
                    let v = be16(opts, i + 2);
                    let nv = std::cmp::max(v.saturating_sub(by), 64);
                    put16(opts, i + 2, nv);
                }
                i += l;
            }
        }
    }
}

/// Copies the option area into `out`, turning EOL and everything after it into NOPs, and if
/// `need` more bytes do not fit in 40, drops SACK blocks and NOP padding. Returns the new length
/// (a multiple of 4) or None if the option still does not fit.
fn prepare_options(area: &[u8], need: usize, out: &mut [u8; 40]) -> Option<usize> {
    let n = area.len();
    out[..n].copy_from_slice(area);
    if let Some(p) = eol_position(&out[..n]) {
        for b in out[p..n].iter_mut() {
            *b = 1;
        }
    }
    if n + need <= 40 {
        return Some(n);
    }
    // Compact: keep all options except SACK (kind 5) and NOPs.
    let mut tmp = [0u8; 40];
    let mut m = 0;
    for (off, kind, len) in tcp_options(&out[..n]) {
        if kind == 1 || kind == 5 {
            continue;
        }
        tmp[m..m + len].copy_from_slice(&out[off..off + len]);
        m += len;
    }
    while m % 4 != 0 {
        tmp[m] = 1;
        m += 1;
    }
    if m + need > 40 {
        return None;
    }
    out[..m].copy_from_slice(&tmp[..m]);
    Some(m)
}

fn eol_position(o: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < o.len() {
        match o[i] {
            0 => return Some(i),
            1 => i += 1,
            _ => {
                if i + 1 >= o.len() {
                    return None;
                }
                let l = o[i + 1] as usize;
                if l < 2 {
                    return None;
                }
                i += l;
            }
        }
    }
    None
}

/// Length of the MAC input's fixed part for TCP.
pub const TCP_MAC_HEAD_LEN: usize = 33;

/// The MAC input's fixed part for TCP: domain || be32(ISN sender) || be32(ISN receiver) ||
/// be64(ext_seq) || be64(ext_ack) || reserved+AE bits (TCP byte 12 & 0x0f) || flags (byte 13) ||
/// window || urgent || be16(len(other options)).
fn tcp_mac_head(pos: &TcpPos, b12: u8, flags: u8, window: u16, urg: u16, optlen: usize) -> [u8; TCP_MAC_HEAD_LEN] {
    let mut h = [0u8; TCP_MAC_HEAD_LEN];
    h[0] = DOMAIN_TCP;
    h[1..5].copy_from_slice(&pos.isn_sender.to_be_bytes());
    h[5..9].copy_from_slice(&pos.isn_receiver.to_be_bytes());
    h[9..17].copy_from_slice(&pos.ext_seq.to_be_bytes());
    h[17..25].copy_from_slice(&pos.ext_ack.to_be_bytes());
    h[25] = b12 & 0x0f;
    h[26] = flags;
    h[27..29].copy_from_slice(&window.to_be_bytes());
    h[29..31].copy_from_slice(&urg.to_be_bytes());
    h[31..33].copy_from_slice(&(optlen as u16).to_be_bytes());
    h
}

/// Compat mode: the keystream position of the first payload byte (a SYN occupies one sequence
/// number).
#[inline]
pub fn data_pos(ext_seq: u64, flags: u8) -> u64 {
    if flags & TCP_SYN != 0 {
        ext_seq.wrapping_add(1)
    } else {
        ext_seq
    }
}

/// Protects an outgoing TCP segment in place: clamps MSS on SYNs, appends the option, computes the
/// synthetic IV T over the header fields, `pos` and the plaintext, encrypts the payload under T
/// and writes T as the MAC. `d` is put in the option of an initial SYN. The caller rewrites
/// addresses and writes checksums afterwards, and records `pos` in its sequence trackers.
pub fn tcp_protect(buf: &mut Vec<u8>, ip: &Ip, tcp: &Tcp, tx: &mut Dir, pos: &TcpPos, d: u16) -> Result<(), PErr> {
    tcp_protect_with(buf, ip, tcp, tx, pos, d, None)
}

/// `tcp_protect`, or with `probe` a probe's option (a bare ACK the engine made, §6.1).
pub fn tcp_protect_with(buf: &mut Vec<u8>, ip: &Ip, tcp: &Tcp, tx: &mut Dir, pos: &TcpPos, d: u16, probe: Option<u64>) -> Result<(), PErr> {
    let off = tcp.off;
    let flags = tcp.flags;
    let initial_syn = flags & TCP_SYN != 0 && flags & TCP_ACK == 0;
    let olen = if probe.is_some() { TCP_PROBE_OPT_LEN } else if initial_syn { TCP_SYN_OPT_LEN } else { TCP_OPT_LEN };
    let mut opts = [0u8; 40];
    let n = prepare_options(&buf[off + 20..off + tcp.hlen], olen, &mut opts).ok_or(PErr::NoRoom)?;
    if flags & TCP_SYN != 0 {
        clamp_mss(&mut opts[..n], TCP_OPT_LEN as u16);
    }
    let plen = tcp.end - tcp.payload;
    let new_hlen = 20 + n + olen;
    let new_total = off + new_hlen + plen;
    if new_total > 65535 {
        return Err(PErr::NoRoom);
    }
    // Move the payload and write the option area.
    buf.truncate(ip.total);
    if off + new_hlen >= tcp.payload {
        buf.resize(new_total, 0);
        buf.copy_within(tcp.payload..tcp.end, off + new_hlen);
    } else {
        // The option area shrank (SACK dropped): move the payload left, then cut.
        buf.copy_within(tcp.payload..tcp.end, off + new_hlen);
        buf.truncate(new_total);
    }
    buf[off + 20..off + 20 + n].copy_from_slice(&opts[..n]);
    let o = off + 20 + n;
    buf[o] = OPT_KIND;
    buf[o + 1] = olen as u8;
    buf[o + 2..o + 4].copy_from_slice(&EXID);
    if let Some(n) = probe {
        buf[o + 4] = OPT_VERSION;
        buf[o + 5] = OPT_FLAG_PROBE;
        buf[o + 6..o + 12].copy_from_slice(&n.to_be_bytes()[2..]);
    } else if initial_syn {
        buf[o + 4] = OPT_VERSION;
        buf[o + 5] = 0;
        put16(buf, o + 6, d);
    }
    buf[off + 12] = ((new_hlen / 4) as u8) << 4 | (buf[off + 12] & 0x0f);
    put16(buf, 2, new_total as u16);
    // T over the plaintext, then encrypt under T.
    let p0 = off + new_hlen;
    let head = tcp_mac_head(pos, buf[off + 12], flags, be16(buf, off + 14), be16(buf, off + 18), n);
    let t = tx.siv(&[&head, &buf[off + 20..off + 20 + n], &buf[o..o + olen - MAC_LEN], &buf[p0..new_total]]).map_err(|_| PErr::Crypto)?;
    if !tx.crypt_siv(&t, &mut buf[p0..new_total]) {
        return Err(PErr::Crypto);
    }
    buf[o + olen - MAC_LEN..o + olen].copy_from_slice(&t);
    Ok(())
}

/// A probe's number, read from the option area before anything is verified (None: no probe, or
/// not a well-formed one). The gateway decides from it whether a probe from a new source is worth
/// verifying (only a newer one may move a binding).
pub fn tcp_probe_number(area: &[u8], flags: u8) -> Option<u64> {
    find_option(area, flags).ok().and_then(|o| o.3)
}

/// Locates the PCCOM option. Returns (offset within area, length, d, probe number) or an error.
/// A probe's option is accepted on a bare ACK only (ACK alone among SYN, FIN, RST and ACK).
fn find_option(area: &[u8], flags: u8) -> Result<(usize, usize, Option<u16>, Option<u64>), VErr> {
    let mut found: Option<(usize, usize, Option<u16>, Option<u64>)> = None;
    for (i, kind, len) in tcp_options(area) {
        if kind != OPT_KIND || len < 4 || area[i + 2..i + 4] != EXID {
            continue;
        }
        if found.is_some() {
            return Err(VErr::Malformed);
        }
        let initial_syn = flags & TCP_SYN != 0 && flags & TCP_ACK == 0;
        if initial_syn {
            if len != TCP_SYN_OPT_LEN || area[i + 4] != OPT_VERSION {
                return Err(VErr::Malformed);
            }
            found = Some((i, len, Some(be16(area, i + 6)), None));
        } else if len == TCP_PROBE_OPT_LEN {
            let bare_ack = flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK) == TCP_ACK;
            if !bare_ack || area[i + 4] != OPT_VERSION || area[i + 5] != OPT_FLAG_PROBE {
                return Err(VErr::Malformed);
            }
            let mut nb = [0u8; 8];
            nb[2..].copy_from_slice(&area[i + 6..i + 12]);
            found = Some((i, len, None, Some(u64::from_be_bytes(nb))));
        } else {
            if len != TCP_OPT_LEN {
                return Err(VErr::Malformed);
            }
            found = Some((i, len, None, None));
        }
    }
    found.ok_or(VErr::NoMac)
}

/// Verifies an incoming TCP segment: decrypts the payload under the T it carries, recomputes T
/// over the header fields, `pos` and the plaintext, and compares in constant time. On success the
/// payload is plaintext and the option is removed; on failure the packet must be dropped (its
/// payload is garbage). The caller records `pos` after its own checks.
pub fn tcp_verify(buf: &mut Vec<u8>, ip: &Ip, tcp: &Tcp, rx: &mut Dir, pos: &TcpPos) -> Result<TcpOk, VErr> {
    let off = tcp.off;
    let flags = tcp.flags;
    let area_len = tcp.hlen - 20;
    let (oi, olen, d, probe) = find_option(&buf[off + 20..off + tcp.hlen], flags)?;
    // Other options = area without the PCCOM option.
    let mut other = [0u8; 40];
    let n = area_len - olen;
    {
        let area = &buf[off + 20..off + tcp.hlen];
        other[..oi].copy_from_slice(&area[..oi]);
        other[oi..n].copy_from_slice(&area[oi + olen..]);
    }
    let o = off + 20 + oi;
    let mut t = [0u8; MAC_LEN];
    t.copy_from_slice(&buf[o + olen - MAC_LEN..o + olen]);
    if !rx.crypt_siv(&t, &mut buf[tcp.payload..tcp.end]) {
        return Err(VErr::Crypto);
    }
    let head = tcp_mac_head(pos, buf[off + 12], flags, be16(buf, off + 14), be16(buf, off + 18), n);
    let want = rx.siv(&[&head, &other[..n], &buf[o..o + olen - MAC_LEN], &buf[tcp.payload..tcp.end]]).map_err(|_| VErr::Crypto)?;
    if !ct_eq(&want, &t) {
        return Err(VErr::BadMac);
    }
    // Remove the option.
    let new_hlen = tcp.hlen - olen;
    buf[off + 20..off + 20 + n].copy_from_slice(&other[..n]);
    buf.copy_within(tcp.payload..tcp.end, off + new_hlen);
    let new_total = ip.total - olen;
    buf.truncate(new_total);
    buf[off + 12] = ((new_hlen / 4) as u8) << 4 | (buf[off + 12] & 0x0f);
    put16(buf, 2, new_total as u16);
    Ok(TcpOk { d, probe })
}

/// Protects an outgoing UDP datagram: T = HMAC(macKey, 0x12 || d || ctr48 || plaintext)[..12],
/// the payload encrypted under T, and the trailer d(2) || ctr(6) || T(12) appended.
pub fn udp_protect(buf: &mut Vec<u8>, ip: &Ip, udp: &Udp, tx: &mut Dir, ctr: u64, d: u16) -> Result<(), PErr> {
    if ctr == 0 || ctr > UDP_CTR_MAX || ctr > PACKET_LIMIT {
        return Err(PErr::CounterExhausted);
    }
    let new_total = udp.end + UDP_TRAILER_LEN;
    if new_total > 65535 {
        return Err(PErr::NoRoom);
    }
    buf.truncate(ip.total);
    buf.resize(new_total, 0);
    let tr = udp.end;
    put16(buf, tr, d);
    buf[tr + 2..tr + 8].copy_from_slice(&ctr.to_be_bytes()[2..]);
    let t = tx.siv(&[&[DOMAIN_UDP], &buf[tr..tr + 8], &buf[udp.payload..udp.end]]).map_err(|_| PErr::Crypto)?;
    if !tx.crypt_siv(&t, &mut buf[udp.payload..udp.end]) {
        return Err(PErr::Crypto);
    }
    buf[tr + 8..tr + 20].copy_from_slice(&t);
    put16(buf, udp.off + 4, (new_total - udp.off) as u16);
    put16(buf, 2, new_total as u16);
    Ok(())
}

/// Verifies an incoming UDP datagram against `replay` (before any crypto), decrypts it under its
/// T, recomputes T over the plaintext, and strips the trailer. Returns (d, ctr). Updates the replay
/// window on success only.
pub fn udp_verify(buf: &mut Vec<u8>, ip: &Ip, udp: &Udp, rx: &mut Dir, replay: &mut Replay) -> Result<(u16, u64), VErr> {
    if udp.end - udp.payload < UDP_TRAILER_LEN {
        return Err(VErr::NoMac);
    }
    let tr = udp.end - UDP_TRAILER_LEN;
    let d = be16(buf, tr);
    let mut cb = [0u8; 8];
    cb[2..].copy_from_slice(&buf[tr + 2..tr + 8]);
    let ctr = u64::from_be_bytes(cb);
    if !replay.check(ctr) {
        return Err(VErr::Replay);
    }
    let mut t = [0u8; MAC_LEN];
    t.copy_from_slice(&buf[tr + 8..tr + 20]);
    if !rx.crypt_siv(&t, &mut buf[udp.payload..tr]) {
        return Err(VErr::Crypto);
    }
    let want = rx.siv(&[&[DOMAIN_UDP], &buf[tr..tr + 8], &buf[udp.payload..tr]]).map_err(|_| VErr::Crypto)?;
    if !ct_eq(&want, &t) {
        return Err(VErr::BadMac);
    }
    replay.update(ctr);
    buf.truncate(tr);
    let _ = ip;
    put16(buf, udp.off + 4, (tr - udp.off) as u16);
    put16(buf, 2, tr as u16);
    Ok((d, ctr))
}

// ---------------------------------------------------------------------------------------------
// Compat mode: the paper's 16-bit keyed checksum. Length unchanged, no option, no trailer.
// checksum = ~(Σ L4 header with checksum 0 + Σ pseudo-header + fold16(HMAC(macKey, 0x03 || C)[..2])).
// Encryption as in the secure mode (TCP: sequence position; UDP: payload only, position 0 -
// i.e. a fixed keystream per flow direction, which is exactly the weakness the docs describe).

fn compat_s(dir: &Dir, payload: &[u8]) -> Result<u64, ()> {
    let t = hmac_sha256(&dir.keys.mac, &[&[DOMAIN_COMPAT], payload]).ok_or(())?;
    Ok(u16::from_be_bytes([t[0], t[1]]) as u64)
}

/// Writes the keyed checksum for the packet as it stands (after address rewriting).
pub fn compat_seal(buf: &mut [u8], ip: &Ip, proto: u8, payload: usize, dir: &Dir) -> Result<(), PErr> {
    let s = compat_s(dir, &buf[payload..ip.total]).map_err(|_| PErr::Crypto)?;
    let coff = if proto == PROTO_TCP { ip.ihl + 16 } else { ip.ihl + 6 };
    buf[coff] = 0;
    buf[coff + 1] = 0;
    let init = pseudo_sum(ip.src, ip.dst, proto, ip.total - ip.ihl) + s;
    let c = checksum(&buf[ip.ihl..ip.total], init);
    put16(buf, coff, c);
    Ok(())
}

/// Checks the keyed checksum of a received packet (before any rewriting).
pub fn compat_check(buf: &[u8], ip: &Ip, proto: u8, payload: usize, dir: &Dir) -> Result<(), VErr> {
    let s = compat_s(dir, &buf[payload..ip.total]).map_err(|_| VErr::Crypto)?;
    let init = pseudo_sum(ip.src, ip.dst, proto, ip.total - ip.ihl) + s;
    if fold(sum(&buf[ip.ihl..ip.total], init)) == 0xffff {
        Ok(())
    } else {
        Err(VErr::BadMac)
    }
}

pub fn compat_crypt(dir: &mut Dir, proto: u8, ext_pos: u64, data: &mut [u8]) -> bool {
    let pos = if proto == PROTO_TCP { ext_pos } else { 0 };
    aes_ctr_at(&dir.keys.enc, &dir.keys.salt, pos, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_track_extends_across_the_wrap_and_back() {
        let mut t = SeqTrack::default();
        t.update(0xffff_fff0);
        assert_eq!(t.extend(0xffff_fff8), 0xffff_fff8);
        assert_eq!(t.extend(0x10), (1u64 << 32) | 0x10);
        t.update((1u64 << 32) | 0x10);
        assert_eq!(t.extend(0xffff_ff00), 0xffff_ff00); // retransmission before the wrap
        assert_eq!(t.extend(0x20), (1u64 << 32) | 0x20);
        t.update(0xffff_ff00); // older: no change
        assert_eq!(t.sne, 1);
    }

    #[test]
    fn replay_window_accepts_each_counter_once_within_the_window() {
        let mut r = Replay::default();
        assert!(!r.check(0));
        r.update(1);
        assert!(!r.check(1));
        r.update(5000);
        assert!(!r.check(1));
        assert!(r.check(5000 - 900));
        assert!(!r.check(5000 - REPLAY_WINDOW));
        r.update(4999);
        assert!(!r.check(4999));
        assert!(r.check(5001));
    }
}
