//! Addresses the proxy never connects to unless a rule names them: the host itself, its LAN
//! and everything that is not the public internet (no DNS rebinding into the LAN).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `addr` is not a public address, or `None` when it is one.
pub fn private(addr: IpAddr, own: &[IpAddr]) -> Option<&'static str> {
    let kind = kind(addr, own);
    kind.or(own.contains(&addr).then_some("an address of this host"))
}

fn kind(addr: IpAddr, own: &[IpAddr]) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => {
            if let Some(m) = a.to_ipv4_mapped() {
                return private(IpAddr::V4(m), own);
            }
            let s = a.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let v = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return v4(v).or(own
                    .contains(&IpAddr::V4(v))
                    .then_some("an address of this host"));
            }
            v6(a)
        }
    }
}

fn v4(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    if a.is_loopback() {
        Some("loopback")
    } else if a.is_private() {
        Some("private (LAN)")
    } else if a.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("carrier-grade NAT (100.64.0.0/10)")
    } else if a.is_multicast() || a.is_broadcast() || o[0] >= 240 {
        Some("multicast, broadcast or reserved")
    } else if o[0] == 0 {
        Some("unspecified (0.0.0.0/8)")
    } else {
        None
    }
}

fn v6(a: Ipv6Addr) -> Option<&'static str> {
    let s0 = a.segments()[0];
    if a.is_loopback() {
        Some("loopback")
    } else if a.is_unspecified() {
        Some("unspecified")
    } else if a.is_multicast() {
        Some("multicast")
    } else if (s0 & 0xffc0) == 0xfe80 || (s0 & 0xffc0) == 0xfec0 {
        Some("link-local")
    } else if (s0 & 0xfe00) == 0xfc00 {
        Some("private (unique local)")
    } else if a.segments()[..6] == [0; 6] {
        Some("IPv4-compatible (deprecated)")
    } else {
        None
    }
}

/// This host's own addresses (every interface), read once when the proxy starts.
pub fn own() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|i| i.address)
        .filter_map(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<&'static str> {
        private(s.parse().unwrap(), &["203.0.113.9".parse().unwrap()])
    }

    #[test]
    fn refuses_everything_but_the_internet() {
        for a in [
            "127.0.0.1",
            "127.8.9.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "203.0.113.9",
        ] {
            assert!(p(a).is_some(), "{a} passed");
        }
        for a in ["140.82.112.3", "1.1.1.1", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(p(a), None, "{a}");
        }
    }
}
