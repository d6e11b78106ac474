//! The egress allowlist (`network = { allow = [...], deny = [...] }`): host patterns and the
//! decision the host-side proxy makes on the name a client asked for. Pure data, no I/O: the
//! proxy (`wrapix_sandbox::egress`) resolves names and checks addresses itself.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// One entry of `allow` or `deny`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostPattern {
    /// `github.com`: exactly this name.
    Exact(String),
    /// `*.githubusercontent.com`: any name below it, never the name itself.
    Subdomains(String),
    /// `192.0.2.7`, `2001:db8::1`: this address, asked for literally or reached through a name
    /// (a rule that names an address is what lets the proxy connect to a private one).
    Address(IpAddr),
}

/// Why a pattern is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("{0:?} is empty")]
    Empty(String),
    #[error("{0:?}: a wildcard is allowed only as a leading `*.` (subdomains of a name), as in \"*.example.com\"")]
    Wildcard(String),
    #[error("{0:?} is not a host name (letters, digits, `-` and `.`, labels of 1 to 63 characters, 253 at most) nor an IP address")]
    Invalid(String),
    #[error("{0:?}: `*.` needs a name with at least two labels after it (`*.com` would allow a whole top-level domain)")]
    TooWide(String),
    #[error("{0:?}: a pattern names a host, not a URL, port or path")]
    NotAHost(String),
}

impl HostPattern {
    /// Parses one entry (not an `@set` reference). Names are compared lower-case, without a
    /// trailing dot.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(PatternError::Empty(s.to_owned()));
        }
        if t.contains("://") || t.contains('/') || (t.contains(':') && t.parse::<IpAddr>().is_err())
        {
            let unbracketed = t.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = unbracketed.parse::<IpAddr>() {
                return Ok(HostPattern::Address(ip));
            }
            return Err(PatternError::NotAHost(s.to_owned()));
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(HostPattern::Address(ip));
        }
        if let Some(rest) = t.strip_prefix("*.") {
            let name = normalise_name(rest).ok_or_else(|| {
                if rest.contains('*') {
                    PatternError::Wildcard(s.to_owned())
                } else {
                    PatternError::Invalid(s.to_owned())
                }
            })?;
            if !name.contains('.') {
                return Err(PatternError::TooWide(s.to_owned()));
            }
            return Ok(HostPattern::Subdomains(name));
        }
        if t.contains('*') {
            return Err(PatternError::Wildcard(s.to_owned()));
        }
        normalise_name(t)
            .map(HostPattern::Exact)
            .ok_or_else(|| PatternError::Invalid(s.to_owned()))
    }

    /// Whether the host `host` (as [`normalise_host`] returns it) matches.
    pub fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (HostPattern::Exact(p), Host::Name(n)) => p == n,
            (HostPattern::Subdomains(p), Host::Name(n)) => n
                .strip_suffix(p.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (HostPattern::Address(a), Host::Address(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(n) => f.write_str(n),
            HostPattern::Subdomains(n) => write!(f, "*.{n}"),
            HostPattern::Address(a) => write!(f, "{a}"),
        }
    }
}

/// A host a client asked for: a name (lower-case, no trailing dot) or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Address(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Address(a) => write!(f, "{a}"),
        }
    }
}

/// The host of a request (`Example.COM.`, `[::1]`, `10.0.0.1`), or `None` when it is no valid
/// name or address (refused).
pub fn normalise_host(s: &str) -> Option<Host> {
    let unbracketed = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Some(Host::Address(ip));
    }
    normalise_name(s).map(Host::Name)
}

/// A DNS name, lower-case and without its trailing dot, or `None`.
fn normalise_name(s: &str) -> Option<String> {
    let n = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    };
    (!n.is_empty() && n.len() <= 253 && n.split('.').all(label_ok)).then_some(n)
}

/// The validated allowlist of a run (`Network::Filtered`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Egress {
    /// Never empty (an empty allowlist is `network = "none"`).
    pub allow: Vec<HostPattern>,
    pub deny: Vec<HostPattern>,
    /// `[network] notify_denied = true`: denied requests also go to desktop notifications.
    pub notify_denied: bool,
    /// `[[network.credentials]]`: headers the proxy adds to HTTPS requests to these hosts
    /// (each host allowed by `allow`, one entry per host and port).
    pub credentials: Vec<Credential>,
}

/// One `[[network.credentials]]` entry: the proxy terminates TLS for `host:port` (and only
/// there), sets `header: <prefix><secret>` on every request, and forwards it over verified
/// TLS. The secret is read on the host when the proxy starts; the spec names only where from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// An exact host name (lower-case), never a pattern or an address.
    pub host: String,
    /// 443 unless `port` says otherwise.
    pub port: u16,
    /// The header's name, lower-case (`x-api-key`, `authorization`).
    pub header: String,
    /// Put before the secret (`"Bearer "`); empty by default.
    pub prefix: String,
    pub source: SecretSource,
    /// PEM certificates trusted for the upstream besides the system's (a corporate or test
    /// CA): `ca_file = "~/corp-ca.pem"`.
    pub ca_file: Option<PathBuf>,
}

/// Where a credential's secret comes from (read by the host-side proxy when it starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `from_env = "NAME"`: the variable of the `wrapix` process.
    Env(String),
    /// `from_file = "~/.config/…"`: the file's text, without surrounding white space.
    File(PathBuf),
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} {} ", self.host, self.port, self.header)?;
        match &self.source {
            SecretSource::Env(n) => write!(f, "from_env {n}"),
            SecretSource::File(p) => write!(f, "from_file {}", p.display()),
        }
    }
}

impl Egress {
    /// The credential for a tunnel to `host:port`, if one is configured.
    pub fn credential(&self, host: &Host, port: u16) -> Option<&Credential> {
        match host {
            Host::Name(n) => self
                .credentials
                .iter()
                .find(|c| c.host == *n && c.port == port),
            Host::Address(_) => None,
        }
    }
}

/// What the proxy decided about a host, and the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(String),
    Deny(String),
}

impl Egress {
    /// Deny wins; then the first allow rule that matches; else denied (`no rule`).
    pub fn decide(&self, host: &Host) -> Decision {
        if let Some(p) = self.deny.iter().find(|p| p.matches(host)) {
            return Decision::Deny(format!("deny {p}"));
        }
        match self.allow.iter().find(|p| p.matches(host)) {
            Some(p) => Decision::Allow(format!("allow {p}")),
            None => Decision::Deny("no rule".into()),
        }
    }

    /// Whether a rule names `addr` itself: only then may the proxy connect to a private,
    /// loopback or link-local address. A deny rule naming it wins.
    pub fn names_address(&self, addr: IpAddr) -> bool {
        let h = Host::Address(addr);
        !self.deny.iter().any(|p| p.matches(&h)) && self.allow.iter().any(|p| p.matches(&h))
    }
}

impl fmt::Display for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[HostPattern]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        write!(f, "allow [{}]", list(&self.allow).join(", "))?;
        if !self.deny.is_empty() {
            write!(f, " deny [{}]", list(&self.deny).join(", "))?;
        }
        if self.notify_denied {
            f.write_str(" notify_denied")?;
        }
        if !self.credentials.is_empty() {
            let list: Vec<String> = self.credentials.iter().map(|c| c.to_string()).collect();
            write!(f, " credentials [{}]", list.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Host {
        normalise_host(s).unwrap()
    }

    #[test]
    fn patterns_parse_and_refuse() {
        assert_eq!(
            HostPattern::parse("GitHub.com."),
            Ok(HostPattern::Exact("github.com".into()))
        );
        assert_eq!(
            HostPattern::parse("*.githubusercontent.com"),
            Ok(HostPattern::Subdomains("githubusercontent.com".into()))
        );
        assert!(matches!(
            HostPattern::parse("10.0.0.1"),
            Ok(HostPattern::Address(_))
        ));
        assert!(matches!(
            HostPattern::parse("[::1]"),
            Ok(HostPattern::Address(_))
        ));
        for bad in [
            "",
            " ",
            "*",
            "*.com",
            "a.*.com",
            "git*hub.com",
            "https://github.com",
            "github.com:443",
            "github.com/x",
            "-a.com",
            "a..com",
            "a b.com",
            "exa\u{0}mple.com",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn subdomains_only_and_deny_wins() {
        let e = Egress {
            allow: vec![
                HostPattern::parse("github.com").unwrap(),
                HostPattern::parse("*.githubusercontent.com").unwrap(),
            ],
            deny: vec![HostPattern::parse("evil.githubusercontent.com").unwrap()],
            notify_denied: false,
            credentials: Vec::new(),
        };
        assert!(matches!(e.decide(&host("GITHUB.com.")), Decision::Allow(_)));
        assert!(matches!(
            e.decide(&host("api.github.com")),
            Decision::Deny(_)
        ));
        assert!(matches!(
            e.decide(&host("raw.githubusercontent.com")),
            Decision::Allow(_)
        ));
        assert!(matches!(
            e.decide(&host("githubusercontent.com")),
            Decision::Deny(_)
        ));
        assert!(matches!(
            e.decide(&host("xgithubusercontent.com")),
            Decision::Deny(_)
        ));
        assert_eq!(
            e.decide(&host("evil.githubusercontent.com")),
            Decision::Deny("deny evil.githubusercontent.com".into())
        );
        assert!(matches!(e.decide(&host("140.82.112.3")), Decision::Deny(_)));
    }

    #[test]
    fn addresses_match_only_addresses() {
        let e = Egress {
            allow: vec![HostPattern::parse("127.0.0.1").unwrap()],
            deny: vec![],
            notify_denied: false,
            credentials: Vec::new(),
        };
        assert!(e.names_address("127.0.0.1".parse().unwrap()));
        assert!(!e.names_address("127.0.0.2".parse().unwrap()));
        assert!(matches!(e.decide(&host("127.0.0.1")), Decision::Allow(_)));
        assert!(matches!(e.decide(&host("localhost")), Decision::Deny(_)));
    }
}
