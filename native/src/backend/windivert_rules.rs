//! The agent's WinDivert handles: the Windows twin of `agentRules()` in native/index.ts (the
//! iptables rules of the Linux agent), as WinDivert filter strings with priorities.
//!
//! | handle  | filter (WinDivert filter language)                                  | Linux rule                  |
//! |---------|----------------------------------------------------------------------|-----------------------------|
//! | `out`   | outbound IPv4 to the VIN range                                        | raw OUTPUT -d VIN -> out queue |
//! | `in`    | inbound TCP/UDP from GGR's reserved port range, and all inbound ICMP | raw PREROUTING -s GGR --sport lo:hi, -p icmp -> in queue |
//! | `dns`   | inbound UDP from port 53 (optionally only from the given resolvers)  | mangle PREROUTING --sport 53, connmark of a zone query -> in queue |
//! | `dnsq`  | outbound UDP to port 53 (the resolvers), not to the VIN range         | mangle OUTPUT --dport 53, zone query -> out queue, --queue-bypass |
//! | `guard` | outbound IPv4 to the VIN range, WINDIVERT_FLAG_DROP, lowest priority | (none needed: no --queue-bypass) |
//!
//! Priorities (higher sees a packet first; a packet a handle re-injects is seen only by handles
//! of lower priority, WinDivert 2.2 `windivert_classify`): dnsq 1003 > dns 1002 > out 1001 > in 1000 > guard
//! -1000. So a translated packet never meets its own filter again; a decrypted reply from an
//! internal DNS server (source VIN:53, re-injected by `in`) is not taken for a DNS answer to
//! rewrite; and anything the agent's handles let go of unmodified while closing (WinDivert
//! re-injects what is still queued in the kernel when a handle closes) falls into `guard`,
//! which drops it. The service host keeps its own `guard` open for as long as the service runs,
//! so a crashed agent does not let VIN-bound packets leave untranslated either.

use crate::engine::Hook;
use crate::pkt::ip_to_string;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Out,
    In,
    Dns,
    /// Outbound DNS queries: the agent only records them (its engine punts them, the verdict
    /// accepts them unchanged), so that it acts only on answers to queries it saw leave.
    DnsQuery,
    Guard,
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Out => "out",
            Role::In => "in",
            Role::Dns => "dns",
            Role::DnsQuery => "dnsq",
            Role::Guard => "guard",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleSpec {
    pub role: Role,
    pub filter: String,
    pub priority: i16,
    /// WINDIVERT_FLAG_* bits.
    pub flags: u64,
    /// The engine hook for what this handle receives (the guard receives nothing).
    pub hook: Hook,
}

pub const PRIORITY_DNS_QUERY: i16 = 1003;
pub const PRIORITY_DNS: i16 = 1002;
pub const PRIORITY_OUT: i16 = 1001;
pub const PRIORITY_IN: i16 = 1000;
pub const PRIORITY_GUARD: i16 = -1000;
/// The service host's guard: below the agent's own, so both drop the same packets.
pub const PRIORITY_SERVICE_GUARD: i16 = -1001;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDivert {
    pub vin_net: u32,
    pub vin_prefix: u8,
    pub ggr: u32,
    /// GGR's reserved port range (its replies come from these ports).
    pub ports: (u16, u16),
    /// DNS servers whose answers are examined; empty = any (like the Linux rule).
    pub resolvers: Vec<u32>,
}

/// First and last address of a prefix.
pub fn range_of(net: u32, prefix: u8) -> (u32, u32) {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) };
    (net & mask, (net & mask) | !mask)
}

/// The filter for "outbound to the VIN range" (used by `out` and both guards).
pub fn vin_filter(vin_net: u32, vin_prefix: u8) -> String {
    let (a, b) = range_of(vin_net, vin_prefix);
    format!("outbound and ip and ip.DstAddr >= {} and ip.DstAddr <= {}", ip_to_string(a), ip_to_string(b))
}

impl AgentDivert {
    pub fn check(&self) -> Result<(), String> {
        if self.vin_prefix < 8 || self.vin_prefix > 30 {
            return Err(format!("vinNet: prefix /{} out of /8../30", self.vin_prefix));
        }
        if self.ggr == 0 {
            return Err("ggr: 0.0.0.0 is not the gateway".into());
        }
        let (lo, hi) = self.ports;
        if lo == 0 || lo > hi {
            return Err(format!("ports: {}:{} is not a port range", lo, hi));
        }
        let (a, b) = range_of(self.vin_net, self.vin_prefix);
        if self.ggr >= a && self.ggr <= b {
            return Err("ggr: the gateway's address lies inside the VIN range".into());
        }
        Ok(())
    }

    pub fn handles(&self) -> Result<Vec<HandleSpec>, String> {
        self.check()?;
        let (lo, hi) = self.ports;
        let ggr = ip_to_string(self.ggr);
        let vin = vin_filter(self.vin_net, self.vin_prefix);
        let inbound = format!(
            "inbound and ip and ((ip.SrcAddr == {g} and ((tcp.SrcPort >= {lo} and tcp.SrcPort <= {hi}) or (udp.SrcPort >= {lo} and udp.SrcPort <= {hi}))) or icmp)",
            g = ggr,
            lo = lo,
            hi = hi
        );
        let mut dns = "inbound and ip and udp.SrcPort == 53".to_string();
        let (a, b) = range_of(self.vin_net, self.vin_prefix);
        let mut dnsq = format!("outbound and ip and udp.DstPort == 53 and (ip.DstAddr < {} or ip.DstAddr > {})", ip_to_string(a), ip_to_string(b));
        if !self.resolvers.is_empty() {
            let any: Vec<String> = self.resolvers.iter().map(|r| format!("ip.SrcAddr == {}", ip_to_string(*r))).collect();
            dns = format!("{} and ({})", dns, any.join(" or "));
            let to: Vec<String> = self.resolvers.iter().map(|r| format!("ip.DstAddr == {}", ip_to_string(*r))).collect();
            dnsq = format!("{} and ({})", dnsq, to.join(" or "));
        }
        Ok(vec![
            HandleSpec { role: Role::Guard, filter: vin.clone(), priority: PRIORITY_GUARD, flags: super::windivert_abi::FLAG_DROP, hook: Hook::Out },
            HandleSpec { role: Role::In, filter: inbound, priority: PRIORITY_IN, flags: 0, hook: Hook::In },
            HandleSpec { role: Role::Out, filter: vin, priority: PRIORITY_OUT, flags: 0, hook: Hook::Out },
            HandleSpec { role: Role::Dns, filter: dns, priority: PRIORITY_DNS, flags: 0, hook: Hook::In },
            HandleSpec { role: Role::DnsQuery, filter: dnsq, priority: PRIORITY_DNS_QUERY, flags: 0, hook: Hook::Out },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkt::parse_ipv4_str;

    fn ip(s: &str) -> u32 {
        parse_ipv4_str(s).unwrap()
    }

    fn lab() -> AgentDivert {
        AgentDivert { vin_net: ip("198.19.224.0"), vin_prefix: 20, ggr: ip("203.0.113.1"), ports: (40000, 59999), resolvers: vec![] }
    }

    fn by(h: &[HandleSpec], r: Role) -> HandleSpec {
        h.iter().find(|x| x.role == r).unwrap().clone()
    }

    #[test]
    fn filters_mirror_the_linux_rules() {
        let h = lab().handles().unwrap();
        assert_eq!(h.len(), 5);
        assert_eq!(by(&h, Role::DnsQuery).filter, "outbound and ip and udp.DstPort == 53 and (ip.DstAddr < 198.19.224.0 or ip.DstAddr > 198.19.239.255)");
        assert_eq!(by(&h, Role::DnsQuery).hook, Hook::Out);
        assert_eq!(by(&h, Role::Out).filter, "outbound and ip and ip.DstAddr >= 198.19.224.0 and ip.DstAddr <= 198.19.239.255");
        assert_eq!(
            by(&h, Role::In).filter,
            "inbound and ip and ((ip.SrcAddr == 203.0.113.1 and ((tcp.SrcPort >= 40000 and tcp.SrcPort <= 59999) or (udp.SrcPort >= 40000 and udp.SrcPort <= 59999))) or icmp)"
        );
        assert_eq!(by(&h, Role::Dns).filter, "inbound and ip and udp.SrcPort == 53");
        assert_eq!(by(&h, Role::Guard).filter, by(&h, Role::Out).filter);
        assert_eq!((by(&h, Role::Out).hook, by(&h, Role::In).hook, by(&h, Role::Dns).hook), (Hook::Out, Hook::In, Hook::In));
    }

    #[test]
    fn resolvers_narrow_the_dns_handle() {
        let mut d = lab();
        d.resolvers = vec![ip("192.168.1.1"), ip("9.9.9.9")];
        let h = d.handles().unwrap();
        assert_eq!(by(&h, Role::Dns).filter, "inbound and ip and udp.SrcPort == 53 and (ip.SrcAddr == 192.168.1.1 or ip.SrcAddr == 9.9.9.9)");
        assert!(by(&h, Role::DnsQuery).filter.ends_with(" and (ip.DstAddr == 192.168.1.1 or ip.DstAddr == 9.9.9.9)"));
    }

    #[test]
    fn only_the_guard_drops_and_it_is_opened_first_and_sits_lowest() {
        let h = lab().handles().unwrap();
        assert_eq!(h[0].role, Role::Guard, "the guard is open before anything is diverted");
        for x in &h {
            assert_eq!(x.flags != 0, x.role == Role::Guard);
            assert!(x.priority.abs() <= crate::backend::windivert_abi::PRIORITY_HIGHEST);
        }
        let p = |r| by(&h, r).priority;
        // Re-injected packets are seen only by lower priorities: see the module comment.
        assert!(p(Role::DnsQuery) > p(Role::Dns) && p(Role::Dns) > p(Role::Out) && p(Role::Out) > p(Role::In) && p(Role::In) > p(Role::Guard));
        assert!(PRIORITY_SERVICE_GUARD < PRIORITY_GUARD);
    }

    #[test]
    fn ranges_cover_the_prefix() {
        assert_eq!(range_of(ip("198.19.224.77"), 20), (ip("198.19.224.0"), ip("198.19.239.255")));
        assert_eq!(range_of(ip("10.1.2.3"), 8), (ip("10.0.0.0"), ip("10.255.255.255")));
        assert_eq!(range_of(ip("10.1.2.3"), 30), (ip("10.1.2.0"), ip("10.1.2.3")));
        assert_eq!(vin_filter(ip("100.100.0.0"), 16), "outbound and ip and ip.DstAddr >= 100.100.0.0 and ip.DstAddr <= 100.100.255.255");
    }

    #[test]
    fn nonsense_is_refused() {
        let mut d = lab();
        d.ports = (50000, 40000);
        assert!(d.handles().unwrap_err().contains("port range"));
        let mut d = lab();
        d.ggr = ip("198.19.230.1");
        assert!(d.handles().unwrap_err().contains("inside the VIN range"));
        let mut d = lab();
        d.vin_prefix = 4;
        assert!(d.handles().is_err());
        let mut d = lab();
        d.ggr = 0;
        assert!(d.handles().is_err());
    }
}
