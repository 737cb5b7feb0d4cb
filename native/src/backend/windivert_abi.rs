//! WinDivert 2.2's user-mode ABI, the parts the `windivert` backend needs, written so they
//! compile and are unit-tested on every platform (the FFI itself is in `windivert_windows.rs`):
//! the `WINDIVERT_ADDRESS` record and its bitfields, the constants of `windivert.h`, how a
//! batch of received packets is laid out, and what each `WinDivertOpen` error means to the
//! person at the keyboard.
//!
//! Layout facts (WinDivert 2.2.2 `windivert.h`, checked by compiling it with
//! x86_64-w64-mingw32-gcc and dumping a filled-in struct; the bytes are in the tests below):
//! `WINDIVERT_ADDRESS` is 80 bytes, 8-aligned: `INT64 Timestamp`; a 32-bit word of bitfields
//! (Layer:8, Event:8, then one bit each, from bit 16: Sniffed, Outbound, Loopback, Impostor,
//! IPv6, IPChecksum, TCPChecksum, UDPChecksum); a reserved 32-bit word; a 64-byte union whose
//! network-layer member is `UINT32 IfIdx, SubIfIdx`.

/// `WINDIVERT_LAYER_NETWORK`: packets to and from this machine.
pub const LAYER_NETWORK: u32 = 0;
/// `WINDIVERT_FLAG_DROP`: matching packets are dropped in the kernel, nothing is queued.
pub const FLAG_DROP: u64 = 0x0002;
/// `WINDIVERT_PARAM_*` (WinDivertSetParam).
pub const PARAM_QUEUE_LENGTH: u32 = 0;
pub const PARAM_QUEUE_TIME: u32 = 1;
pub const PARAM_QUEUE_SIZE: u32 = 2;
pub const QUEUE_LENGTH_MIN: u64 = 32;
pub const QUEUE_LENGTH_MAX: u64 = 16384;
/// How long the driver keeps a packet nobody has read (ms). The engine reads at once; a packet
/// that waits this long is dropped by the driver, never passed.
pub const QUEUE_TIME_MS: u64 = 2000;
pub const QUEUE_SIZE_BYTES: u64 = 8 << 20;
/// `WINDIVERT_SHUTDOWN_RECV`.
pub const SHUTDOWN_RECV: u32 = 1;
/// `WINDIVERT_BATCH_MAX`: packets per WinDivertRecvEx / WinDivertSendEx.
pub const BATCH_MAX: usize = 255;
/// `WINDIVERT_MTU_MAX`: the largest packet the driver hands out.
pub const MTU_MAX: usize = 40 + 0xFFFF;
/// `WINDIVERT_PRIORITY_HIGHEST`; priorities run from -30000 to 30000.
pub const PRIORITY_HIGHEST: i16 = 30000;

/// `WINDIVERT_ADDRESS`: where a packet came from, and where WinDivertSend puts it back.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub timestamp: i64,
    flags: u32,
    reserved: u32,
    /// The layer-specific union; at the network layer: IfIdx (0..4), SubIfIdx (4..8).
    data: [u8; 64],
}

pub const ADDRESS_LEN: usize = 80;

const BIT_SNIFFED: u32 = 16;
const BIT_OUTBOUND: u32 = 17;
const BIT_LOOPBACK: u32 = 18;
const BIT_IMPOSTOR: u32 = 19;
const BIT_IPV6: u32 = 20;
const BIT_IP_CHECKSUM: u32 = 21;
const BIT_TCP_CHECKSUM: u32 = 22;
const BIT_UDP_CHECKSUM: u32 = 23;

impl Default for Address {
    fn default() -> Address {
        Address { timestamp: 0, flags: 0, reserved: 0, data: [0; 64] }
    }
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Address")
            .field("outbound", &self.outbound())
            .field("loopback", &self.loopback())
            .field("impostor", &self.impostor())
            .field("if_idx", &self.if_idx())
            .field("sub_if_idx", &self.sub_if_idx())
            .finish()
    }
}

impl Address {
    fn bit(&self, b: u32) -> bool {
        self.flags & (1 << b) != 0
    }
    fn set_bit(&mut self, b: u32, on: bool) {
        if on {
            self.flags |= 1 << b;
        } else {
            self.flags &= !(1 << b);
        }
    }
    pub fn layer(&self) -> u32 {
        self.flags & 0xff
    }
    pub fn event(&self) -> u32 {
        (self.flags >> 8) & 0xff
    }
    pub fn sniffed(&self) -> bool {
        self.bit(BIT_SNIFFED)
    }
    pub fn outbound(&self) -> bool {
        self.bit(BIT_OUTBOUND)
    }
    pub fn set_outbound(&mut self, on: bool) {
        self.set_bit(BIT_OUTBOUND, on)
    }
    pub fn loopback(&self) -> bool {
        self.bit(BIT_LOOPBACK)
    }
    pub fn impostor(&self) -> bool {
        self.bit(BIT_IMPOSTOR)
    }
    pub fn set_impostor(&mut self, on: bool) {
        self.set_bit(BIT_IMPOSTOR, on)
    }
    pub fn ipv6(&self) -> bool {
        self.bit(BIT_IPV6)
    }
    /// The driver vouches for the IPv4 header checksum (false: offloaded, arbitrary value).
    pub fn ip_checksum(&self) -> bool {
        self.bit(BIT_IP_CHECKSUM)
    }
    pub fn tcp_checksum(&self) -> bool {
        self.bit(BIT_TCP_CHECKSUM)
    }
    pub fn udp_checksum(&self) -> bool {
        self.bit(BIT_UDP_CHECKSUM)
    }
    pub fn if_idx(&self) -> u32 {
        u32::from_le_bytes([self.data[0], self.data[1], self.data[2], self.data[3]])
    }
    pub fn sub_if_idx(&self) -> u32 {
        u32::from_le_bytes([self.data[4], self.data[5], self.data[6], self.data[7]])
    }
    pub fn set_interface(&mut self, if_idx: u32, sub_if_idx: u32) {
        self.data[0..4].copy_from_slice(&if_idx.to_le_bytes());
        self.data[4..8].copy_from_slice(&sub_if_idx.to_le_bytes());
    }

    /// The address a packet goes back with. The engine has written every checksum itself (the
    /// compat mode's keyed checksum among them), so all three checksum bits say "valid": with a
    /// bit clear, WinDivertSend would recompute that checksum and overwrite the engine's.
    pub fn for_send(&self) -> Address {
        let mut a = *self;
        a.set_bit(BIT_IP_CHECKSUM, true);
        a.set_bit(BIT_TCP_CHECKSUM, true);
        a.set_bit(BIT_UDP_CHECKSUM, true);
        a
    }

    /// The address of a packet the engine made for an application on this PC (TCP RST, ICMP
    /// unreachable): inbound, on the interface `like` was seen on, not an impostor.
    pub fn inbound_like(like: &Address) -> Address {
        let mut a = Address::default();
        a.set_interface(like.if_idx(), like.sub_if_idx());
        a.for_send()
    }

    /// Serialises to the C layout (little-endian x86-64), for tests and for golden comparisons.
    pub fn to_bytes(&self) -> [u8; ADDRESS_LEN] {
        let mut b = [0u8; ADDRESS_LEN];
        b[0..8].copy_from_slice(&self.timestamp.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.reserved.to_le_bytes());
        b[16..80].copy_from_slice(&self.data);
        b
    }

    pub fn from_bytes(b: &[u8; ADDRESS_LEN]) -> Address {
        let mut data = [0u8; 64];
        data.copy_from_slice(&b[16..80]);
        Address {
            timestamp: i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            flags: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            reserved: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            data,
        }
    }
}

/// Where each packet of a WinDivertRecvEx batch starts and ends. The driver packs the packets
/// back to back with no gaps, so the IP header's own length is the only delimiter (IPv4 total
/// length; IPv6: 40 + payload length). `count` is the number of addresses the driver filled in.
/// A length that runs past the data ends the batch there (the rest is reported as lost).
pub fn split_batch(buf: &[u8], count: usize) -> (Vec<(usize, usize)>, usize) {
    let mut out = Vec::with_capacity(count);
    let mut off = 0;
    while out.len() < count && off < buf.len() {
        let rest = &buf[off..];
        let len = match rest[0] >> 4 {
            4 if rest.len() >= 20 => u16::from_be_bytes([rest[2], rest[3]]) as usize,
            6 if rest.len() >= 40 => 40 + u16::from_be_bytes([rest[4], rest[5]]) as usize,
            _ => 0,
        };
        if len < 20 || len > rest.len() {
            break;
        }
        out.push((off, off + len));
        off += len;
    }
    let lost = count - out.len();
    (out, lost)
}

/// An outbound packet the stack left for the NIC to finish carries an arbitrary IPv4 header
/// checksum (the address's IPChecksum bit is clear). The engine checks that checksum, so it is
/// written here first. Inbound packets keep theirs: it came from the wire and must be judged.
pub fn repair_outbound_ip_checksum(pkt: &mut [u8], addr: &Address) {
    if !addr.outbound() || addr.ip_checksum() || pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return;
    }
    let ihl = ((pkt[0] & 0x0f) as usize) * 4;
    if ihl < 20 || ihl > pkt.len() {
        return;
    }
    pkt[10] = 0;
    pkt[11] = 0;
    let c = crate::pkt::checksum(&pkt[..ihl], 0);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
}

/// What a WinDivertOpen (or loading WinDivert.dll) error means, in words a teleworker or their
/// IT can act on. Codes from WinDivert 2.2's manual (WinDivertOpen) and the Win32 loader.
pub fn open_error_sentence(code: u32, dll_dir: &str) -> String {
    let s = match code {
        2 | 3 => format!(
            "the WinDivert driver files are missing: WinDivert.dll and WinDivert64.sys must both be in {} (repair or reinstall GSRA)",
            dll_dir
        ),
        5 => "GSRA's packet filter needs administrator rights: run the GSRA Agent service (or an elevated prompt), not a normal user's process".to_string(),
        87 => "WinDivert refused GSRA's packet filter (invalid filter, layer, priority or flags): a GSRA bug, please report it".to_string(),
        126 => format!("WinDivert.dll could not be loaded from {} (file missing or a DLL it needs is missing): repair or reinstall GSRA", dll_dir),
        127 => format!("the WinDivert.dll in {} is not WinDivert 2.2 (a function is missing): repair or reinstall GSRA", dll_dir),
        193 => format!("the WinDivert.dll in {} is not a 64-bit Windows DLL: repair or reinstall GSRA", dll_dir),
        577 => "Windows refused the WinDivert driver's signature (error 577): the PC may lack the update that trusts its certificate (run Windows Update), or the file was altered (reinstall GSRA)".to_string(),
        654 => "another program has a different version of the WinDivert driver loaded (error 654): close it or reboot, then start GSRA again".to_string(),
        1053 => "the WinDivert driver did not start in time (error 1053): reboot and start GSRA again; if it persists, security software may be holding the driver back".to_string(),
        1058 => "the WinDivert driver service is disabled (error 1058): IT must re-enable the 'WinDivert' service, or reboot and start GSRA again".to_string(),
        1060 => "the WinDivert driver is not installed (error 1060): start GSRA as administrator once so it can install it".to_string(),
        1114 => "the WinDivert driver could not start on this system (error 1114, ERROR_DLL_INIT_FAILED): this is what happens under Wine or without a kernel driver; GSRA needs a real Windows 10/11".to_string(),
        1275 => "Windows blocked the WinDivert driver (error 1275): security software or a driver block list (HVCI, vulnerable-driver list) stopped it, or this is a virtual machine without driver support; ask IT to allow WinDivert64.sys".to_string(),
        1753 => "the Base Filtering Engine service is not running (error 1753): start the 'BFE' service (Windows Firewall depends on it) and try again".to_string(),
        _ => format!("WinDivert could not be opened (Windows error {})", code),
    };
    format!("cannot divert packets: {}", s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes dumped from the C struct (mingw-w64 gcc, windivert.h 2.2.2): Timestamp
    /// 0x0102030405060708, Layer 1, Event 2, Sniffed, Outbound, IfIdx 0x11223344, SubIfIdx 0x55667788.
    const C_DUMP_A: [u8; 24] = [8, 7, 6, 5, 4, 3, 2, 1, 1, 2, 3, 0, 0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55];

    fn addr_with(prefix: &[u8]) -> Address {
        let mut b = [0u8; ADDRESS_LEN];
        b[..prefix.len()].copy_from_slice(prefix);
        Address::from_bytes(&b)
    }

    #[test]
    fn address_has_the_c_size_and_alignment() {
        assert_eq!(std::mem::size_of::<Address>(), ADDRESS_LEN);
        assert_eq!(std::mem::align_of::<Address>(), 8);
        // In memory, the Rust struct is the C struct: reading it back by bytes agrees.
        let a = addr_with(&C_DUMP_A);
        let raw: [u8; ADDRESS_LEN] = unsafe { std::mem::transmute(a) };
        assert_eq!(&raw[..24], &C_DUMP_A[..]);
    }

    #[test]
    fn bitfields_sit_where_the_c_compiler_puts_them() {
        let a = addr_with(&C_DUMP_A);
        assert_eq!(a.timestamp, 0x0102030405060708);
        assert_eq!((a.layer(), a.event()), (1, 2));
        assert!(a.sniffed() && a.outbound());
        assert!(!a.loopback() && !a.impostor() && !a.ipv6());
        assert_eq!((a.if_idx(), a.sub_if_idx()), (0x11223344, 0x55667788));
        // Loopback, Impostor, IPv6 -> byte 10 = 0x1c; the three checksum bits -> 0xe0.
        let b = addr_with(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1c]);
        assert!(b.loopback() && b.impostor() && b.ipv6() && !b.outbound());
        let c = addr_with(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe0]);
        assert!(c.ip_checksum() && c.tcp_checksum() && c.udp_checksum());
        assert_eq!(Address::default().for_send().to_bytes()[10], 0xe0);
    }

    #[test]
    fn setters_round_trip_through_the_c_bytes() {
        let mut a = Address::default();
        a.set_outbound(true);
        a.set_interface(7, 3);
        let b = a.to_bytes();
        assert_eq!(b[10], 0x02);
        assert_eq!(&b[16..24], &[7, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(Address::from_bytes(&b), a);
        a.set_outbound(false);
        assert_eq!(a.to_bytes()[10], 0);
    }

    #[test]
    fn for_send_keeps_direction_and_interface_and_vouches_for_checksums() {
        let mut a = addr_with(&C_DUMP_A);
        a.set_impostor(true);
        let s = a.for_send();
        assert!(s.outbound() && s.impostor() && s.ip_checksum() && s.tcp_checksum() && s.udp_checksum());
        assert_eq!((s.if_idx(), s.sub_if_idx()), (0x11223344, 0x55667788));
        let i = Address::inbound_like(&a);
        assert!(!i.outbound() && !i.impostor() && i.tcp_checksum());
        assert_eq!(i.if_idx(), 0x11223344);
    }

    fn ipv4(len: usize, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p
    }

    #[test]
    fn a_batch_splits_on_the_ip_lengths() {
        let mut buf = ipv4(40, 1);
        buf.extend(ipv4(1500, 2));
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[4..6].copy_from_slice(&8u16.to_be_bytes());
        buf.extend(&v6);
        buf.extend(ipv4(20, 3));
        let (r, lost) = split_batch(&buf, 4);
        assert_eq!(r, vec![(0, 40), (40, 1540), (1540, 1588), (1588, 1608)]);
        assert_eq!(lost, 0);
    }

    #[test]
    fn a_batch_with_a_lying_length_stops_there() {
        let mut buf = ipv4(40, 1);
        let mut bad = ipv4(60, 2);
        bad[2..4].copy_from_slice(&9000u16.to_be_bytes());
        buf.extend(&bad);
        buf.extend(ipv4(40, 3));
        assert_eq!(split_batch(&buf, 3), (vec![(0, 40)], 2));
        // Garbage version, too short, zero length: nothing is taken.
        assert_eq!(split_batch(&[0x15; 40], 1), (vec![], 1));
        assert_eq!(split_batch(&[0x45, 0, 0, 40], 1), (vec![], 1));
        assert_eq!(split_batch(&ipv4(40, 0)[..], 0), (vec![], 0));
        let mut z = ipv4(40, 0);
        z[2] = 0;
        z[3] = 0;
        assert_eq!(split_batch(&z, 1), (vec![], 1));
    }

    #[test]
    fn only_offloaded_outbound_ip_checksums_are_repaired() {
        let mut p = ipv4(40, 0);
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[192, 168, 1, 10]);
        p[16..20].copy_from_slice(&[198, 19, 224, 1]);
        let good = crate::pkt::checksum(&p[..20], 0);
        let mut out = Address::default();
        out.set_outbound(true);
        let mut q = p.clone();
        repair_outbound_ip_checksum(&mut q, &out);
        assert_eq!(crate::pkt::checksum(&q[..20], 0), 0, "repaired header sums to zero");
        assert_eq!(u16::from_be_bytes([q[10], q[11]]), good);
        // Inbound: left as it came (a bad checksum from the wire stays bad, the engine drops it).
        let mut r = p.clone();
        repair_outbound_ip_checksum(&mut r, &Address::default());
        assert_eq!(r, p);
        // Outbound with the driver vouching for it: untouched.
        let mut v = p.clone();
        v[10] = 0xde;
        repair_outbound_ip_checksum(&mut v, &out.for_send());
        assert_eq!(v[10], 0xde);
    }

    #[test]
    fn every_documented_open_error_has_its_own_sentence() {
        let codes = [2u32, 5, 87, 126, 127, 193, 577, 654, 1053, 1058, 1060, 1114, 1275, 1753];
        let all: Vec<String> = codes.iter().map(|c| open_error_sentence(*c, "C:\\Program Files\\GSRA")).collect();
        for (c, s) in codes.iter().zip(&all) {
            assert!(s.starts_with("cannot divert packets: "), "{}", s);
            assert!(!s.contains("(Windows error"), "code {} fell through: {}", c, s);
        }
        let mut uniq = all.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), all.len());
        assert!(open_error_sentence(5, "x").contains("administrator"));
        assert!(open_error_sentence(2, "C:\\GSRA").contains("C:\\GSRA"));
        assert_eq!(open_error_sentence(3, "d"), open_error_sentence(2, "d"));
        assert!(open_error_sentence(1114, "x").contains("Wine"));
        assert!(open_error_sentence(4242, "x").ends_with("(Windows error 4242)"));
    }
}
