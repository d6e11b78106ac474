//! DNS for `network = "open"` when the host's resolver listens on loopback (systemd-resolved's
//! 127.0.0.53, dnsmasq, …). The sandbox cannot reach host loopback by design, so wrapix points
//! the sandbox at a fixed address that pasta maps, for UDP port 53 only, to the host's resolver.

use std::net::IpAddr;

/// The address the sandbox sends DNS queries to when the host resolver is on loopback.
pub const FORWARD_ADDR: &str = "169.254.1.53";

/// What to do about DNS, from the host's `/etc/resolv.conf` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dns {
    /// The host's resolvers are reachable from the sandbox: keep its resolv.conf.
    AsHost,
    /// Replace the nameservers with [`FORWARD_ADDR`]; the rest of the file is kept.
    Forward { resolv_conf: String },
}

pub fn plan(host_resolv_conf: &str) -> Dns {
    let servers: Vec<IpAddr> = host_resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|a| a.split('%').next().and_then(|a| a.parse().ok()))
        .collect();
    if servers.is_empty() || !servers.iter().any(|s| s.is_loopback()) {
        return Dns::AsHost;
    }
    let mut out = String::from("# written by wrapix: the host resolver is on loopback; pasta forwards this address to it\n");
    out.push_str(&format!("nameserver {FORWARD_ADDR}\n"));
    for line in host_resolv_conf.lines() {
        let first = line.split_whitespace().next();
        if matches!(first, Some("search") | Some("domain") | Some("options")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Dns::Forward { resolv_conf: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_resolvers_are_kept() {
        assert_eq!(plan("nameserver 10.255.255.53\n"), Dns::AsHost);
        assert_eq!(plan(""), Dns::AsHost);
    }

    #[test]
    fn loopback_resolver_is_forwarded() {
        let Dns::Forward { resolv_conf } =
            plan("# x\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
        else {
            panic!("not forwarded");
        };
        assert!(resolv_conf.contains("nameserver 169.254.1.53\n"));
        assert!(resolv_conf.contains("options edns0 trust-ad\n"));
        assert!(resolv_conf.contains("search lan\n"));
        assert!(!resolv_conf.contains("127.0.0.53"));
        assert!(matches!(plan("nameserver ::1\n"), Dns::Forward { .. }));
    }
}
