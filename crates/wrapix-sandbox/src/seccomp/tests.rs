//! Tests for the seccomp filter: the policy data, the compiled bytes, and the filter applied
//! for real (in a forked child, and end to end through bubblewrap).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use nix::fcntl::{FcntlArg, FdFlag, OFlag};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

/// Syscalls the policy must mention (the brief's minimum).
const REQUIRED: &str = "keyctl add_key request_key ioctl perf_event_open kexec_load \
    kexec_file_load init_module finit_module delete_module unshare clone clone3 bpf userfaultfd \
    acct swapon swapoff reboot syslog quotactl open_by_handle_at name_to_handle_at \
    lookup_dcookie mount umount2 pivot_root iopl ioperm settimeofday clock_settime vhangup \
    nfsservctl uselib";

#[test]
fn policy_parses_with_reasons_and_required_rules() {
    let denied = denied_syscalls();
    for (name, reason) in &denied {
        assert!(!reason.trim().is_empty(), "{name} has no reason");
    }
    for name in REQUIRED.split_whitespace() {
        assert!(denied.iter().any(|(n, _)| n == name), "policy lacks {name}");
    }
    let policy = load_policy().unwrap();
    let ioctls: Vec<_> = policy
        .rules
        .iter()
        .filter(|r| r.syscall == "ioctl")
        .collect();
    let cmds: Vec<u64> = ioctls
        .iter()
        .map(|r| r.args[0].val.value().unwrap())
        .collect();
    assert_eq!(cmds, [libc::TIOCSTI, libc::TIOCLINUX]);
    assert!(ioctls
        .iter()
        .all(|r| r.args[0].index == 1 && r.args[0].width == "dword"));
}

fn decode(bytes: &[u8]) -> Vec<sock_filter> {
    let u16_at = |c: &[u8], i: usize| u16::from_ne_bytes([c[i], c[i + 1]]);
    let u32_at = |c: &[u8]| u32::from_ne_bytes([c[4], c[5], c[6], c[7]]);
    bytes
        .chunks_exact(8)
        .map(|c| ins(u16_at(c, 0), c[2], c[3], u32_at(c)))
        .collect()
}

#[test]
fn bytes_are_whole_instructions_and_arch_is_checked() {
    let strict = default_filter_bytes(SeccompOptions::default()).unwrap();
    let lax = default_filter_bytes(SeccompOptions {
        allow_user_namespaces: true,
    })
    .unwrap();
    assert!(
        lax.len() < strict.len(),
        "allow_user_namespaces must drop rules"
    );
    for bytes in [&strict, &lax] {
        assert!(
            !bytes.is_empty() && bytes.len() % 8 == 0,
            "len {}",
            bytes.len()
        );
        let prog = decode(bytes);
        assert!(prog.len() <= BPF_MAXINSNS);
        let last = prog.last().map(|i| (i.code, i.k));
        assert_eq!(last, Some((BPF_RET_K, libc::SECCOMP_RET_ALLOW)));
        if cfg!(target_arch = "x86_64") {
            assert_eq!((prog[4].code, prog[4].k), (BPF_JGE_K, X32_SYSCALL_BIT));
        }
    }
    let err = compile("riscv64", SeccompOptions::default());
    assert!(
        matches!(err, Err(SeccompError::UnsupportedArch(_))),
        "{err:?}"
    );
}

// Probe slots: each holds 0 (success) or the errno the call failed with.
const APPLY: usize = 0;
const GETPID: usize = 1;
const OPEN: usize = 2;
const KEYCTL: usize = 3;
const TIOCSTI: usize = 4;
const TIOCSTI_HIGH: usize = 5;
const TIOCLINUX: usize = 6;
const FIOCLEX: usize = 7;
const CLONE_NEWUSER: usize = 8;
const CLONE3: usize = 9;
const PERS_QUERY: usize = 10;
const X32: usize = 11;
const NR_MINUS_1: usize = 12;
const PERS_BAD: usize = 13;
const UNSHARE: usize = 14;
const SLOTS: usize = 15;

#[allow(unsafe_code)]
fn sys(nr: libc::c_long, a: [u64; 3]) -> Result<libc::c_long, i32> {
    // SAFETY: the probes pass integers, or pointers to live locals the kernel only reads.
    let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], 0u64, 0u64) };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
    if ret < 0 {
        Err(errno)
    } else {
        Ok(ret)
    }
}

fn code(r: Result<libc::c_long, i32>) -> i32 {
    r.map_or_else(|e| e, |_| 0)
}

#[allow(unsafe_code)]
fn exit_now(status: i32) -> ! {
    // SAFETY: `_exit` ends the (forked) process without running atexit handlers or
    // unwinding into the test harness, which the fork duplicated.
    unsafe { libc::_exit(status) }
}

/// Runs in a forked, single-threaded child: installs the filter, then makes each probe call.
fn child_probes(filter: Option<&[sock_filter]>) -> [i32; SLOTS] {
    let mut r = [-2; SLOTS];
    if let Some(filter) = filter {
        if seccompiler::apply_filter(filter).is_err() {
            r[APPLY] = -1;
            return r;
        }
    }
    r[APPLY] = 0;
    r[GETPID] = if nix::unistd::getpid().as_raw() > 0 {
        0
    } else {
        -1
    };
    let fd = match nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
        Ok(fd) => fd as u64,
        Err(e) => {
            return {
                r[OPEN] = e as i32;
                r
            }
        }
    };
    r[OPEN] = 0;
    let byte = b'x';
    let ptr = &byte as *const u8 as u64;
    r[KEYCTL] = code(sys(libc::SYS_keyctl, [0, -3i64 as u64, 0])); // GET_KEYRING_ID(session)
    r[TIOCSTI] = code(sys(libc::SYS_ioctl, [fd, 0x5412, ptr]));
    r[TIOCSTI_HIGH] = code(sys(libc::SYS_ioctl, [fd, 0xdead_beef_0000_5412, ptr]));
    r[TIOCLINUX] = code(sys(libc::SYS_ioctl, [fd, 0x541c, ptr]));
    r[FIOCLEX] = code(sys(libc::SYS_ioctl, [fd, libc::FIOCLEX, 0]));
    // CLONE_NEWUSER | CLONE_FS is always EINVAL in the kernel, so nothing is created.
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_FS | libc::SIGCHLD) as u64;
    r[CLONE_NEWUSER] = match sys(libc::SYS_clone, [flags, 0, 0]) {
        Ok(0) => exit_now(0),
        Ok(pid) => waitpid(Pid::from_raw(pid as i32), None).map_or(-1, |_| 0),
        Err(e) => e,
    };
    r[CLONE3] = code(sys(libc::SYS_clone3, [0, 0, 0])); // size 0: EINVAL in the kernel
    r[PERS_QUERY] = code(sys(libc::SYS_personality, [0xffff_ffff, 0, 0]));
    #[cfg(target_arch = "x86_64")]
    {
        r[X32] = code(sys(
            libc::SYS_getpid | X32_SYSCALL_BIT as libc::c_long,
            [0; 3],
        ));
    }
    r[NR_MINUS_1] = code(sys(-1, [0; 3]));
    r[PERS_BAD] = code(sys(libc::SYS_personality, [0x0040_0000, 0, 0])); // READ_IMPLIES_EXEC
    r[UNSHARE] = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_or_else(|e| e as i32, |()| 0);
    r
}

/// Forks a child that runs [`child_probes`] (under `filter_bytes`, if given), returns its slots.
#[allow(unsafe_code)]
fn run_probe(filter_bytes: Option<&[u8]>) -> [i32; SLOTS] {
    let filter = filter_bytes.map(decode); // allocate before forking
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    // SAFETY: the child makes only syscalls (no allocation, no locks), writes one buffer to
    // the pipe and `_exit`s; a forked child of a threaded process may do just that.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let run = std::panic::AssertUnwindSafe(|| child_probes(filter.as_deref()));
            let Ok(slots) = std::panic::catch_unwind(run) else {
                exit_now(101)
            };
            let mut buf = [0u8; SLOTS * 4];
            for (chunk, v) in buf.chunks_exact_mut(4).zip(slots) {
                chunk.copy_from_slice(&v.to_ne_bytes());
            }
            exit_now(if nix::unistd::write(&wr, &buf) == Ok(buf.len()) {
                0
            } else {
                2
            })
        }
        ForkResult::Parent { child } => {
            drop(wr);
            let mut buf = Vec::new();
            std::fs::File::from(rd).read_to_end(&mut buf).unwrap();
            assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
            assert_eq!(buf.len(), SLOTS * 4);
            let mut slots = [0; SLOTS];
            for (v, c) in slots.iter_mut().zip(buf.chunks_exact(4)) {
                *v = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
            }
            slots
        }
    }
}

#[test]
fn filter_denies_in_a_real_process() {
    let base = run_probe(None);
    let got = run_probe(Some(
        &default_filter_bytes(SeccompOptions::default()).unwrap(),
    ));
    eprintln!("unfiltered: {base:?}\nfiltered:   {got:?}");
    // Sanity: without the filter the kernel answers differently (so EPERM below is ours).
    for slot in [TIOCSTI, TIOCSTI_HIGH, TIOCLINUX] {
        assert_eq!(base[slot], libc::ENOTTY, "unfiltered slot {slot}");
    }
    assert_eq!(
        (base[CLONE_NEWUSER], base[CLONE3]),
        (libc::EINVAL, libc::EINVAL)
    );
    assert_eq!(base[PERS_BAD], 0);

    for slot in [APPLY, GETPID, OPEN, FIOCLEX, PERS_QUERY] {
        assert_eq!(got[slot], 0, "slot {slot} must still work");
    }
    for slot in [
        KEYCTL,
        TIOCSTI,
        TIOCSTI_HIGH,
        TIOCLINUX,
        CLONE_NEWUSER,
        UNSHARE,
        PERS_BAD,
    ] {
        assert_eq!(
            got[slot],
            libc::EPERM,
            "slot {slot} must be denied with EPERM"
        );
    }
    assert_eq!(got[CLONE3], libc::ENOSYS);
    assert_eq!(got[NR_MINUS_1], libc::ENOSYS);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(got[X32], libc::EPERM);
    }
}

#[test]
fn allow_user_namespaces_lifts_only_the_userns_rules() {
    let base = run_probe(None);
    let opts = SeccompOptions {
        allow_user_namespaces: true,
    };
    let got = run_probe(Some(&default_filter_bytes(opts).unwrap()));
    eprintln!("unfiltered: {base:?}\nfiltered:   {got:?}");
    if base[UNSHARE] != 0 {
        eprintln!(
            "note: unshare(CLONE_NEWUSER) fails here even unfiltered ({})",
            base[UNSHARE]
        );
    }
    for slot in [UNSHARE, CLONE_NEWUSER, CLONE3] {
        assert_eq!(
            got[slot], base[slot],
            "slot {slot} must behave as unfiltered"
        );
    }
    for slot in [KEYCTL, TIOCSTI, PERS_BAD] {
        assert_eq!(got[slot], libc::EPERM, "slot {slot} must stay denied");
    }
}

const BWRAP: &str = "/usr/bin/bwrap";

fn bwrap(filter: Option<&[u8]>, script: &str) -> Output {
    let mut args: Vec<String> = ["--unshare-user", "--unshare-pid", "--die-with-parent"]
        .into_iter()
        .chain(["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"])
        .map(String::from)
        .collect();
    let mut file = tempfile::tempfile().unwrap();
    if let Some(bytes) = filter {
        file.write_all(bytes).unwrap();
        file.rewind().unwrap();
        // bwrap must inherit the fd: clear close-on-exec, which std sets on every file.
        nix::fcntl::fcntl(file.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
        args.extend(["--seccomp".to_owned(), file.as_raw_fd().to_string()]);
    }
    args.extend(["--", "/bin/sh", "-c", script].map(String::from));
    Command::new(BWRAP).args(&args).output().unwrap()
}

#[test]
fn bwrap_end_to_end() {
    if !std::path::Path::new(BWRAP).exists() {
        return eprintln!("SKIP: {BWRAP} not found");
    }
    let py = format!(
        "import ctypes, os; c = ctypes.CDLL(None, use_errno=True); \
         r = c.syscall({}, 0, -3, 0); print('keyctl', r, ctypes.get_errno()); \
         print('spawn', os.waitpid(os.posix_spawn('/bin/true', ['true'], os.environ), 0)[1])",
        libc::SYS_keyctl
    );
    let script = format!(
        "echo alive; unshare -U true; echo unshare=$?; \
         if command -v python3 >/dev/null; then python3 -c \"{py}\"; fi"
    );
    let text = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let base = bwrap(None, &script);
    if !text(&base).contains("alive") {
        let why = String::from_utf8_lossy(&base.stderr);
        return eprintln!("SKIP: bwrap cannot build a sandbox here (user namespaces?): {why}");
    }
    let strict = bwrap(
        Some(&default_filter_bytes(SeccompOptions::default()).unwrap()),
        &script,
    );
    let out = text(&strict);
    eprintln!("unfiltered: {}filtered: {out}", text(&base));
    assert!(out.contains("alive"), "{strict:?}");
    if text(&base).contains("unshare=0") {
        assert!(out.contains("unshare=1"), "{strict:?}");
        assert!(String::from_utf8_lossy(&strict.stderr).contains("Operation not permitted"));
        let lax = SeccompOptions {
            allow_user_namespaces: true,
        };
        let lax = bwrap(Some(&default_filter_bytes(lax).unwrap()), &script);
        assert!(text(&lax).contains("unshare=0"), "{lax:?}");
    } else {
        eprintln!("SKIP (part): `unshare -U true` fails in bwrap even unfiltered");
    }
    if text(&base).contains("spawn 0") {
        assert!(out.contains("keyctl -1 1\n"), "{strict:?}"); // errno 1 = EPERM
        assert!(
            out.contains("spawn 0\n"),
            "posix_spawn must fall back from clone3"
        );
    } else {
        eprintln!("SKIP (part): no working python3 for the keyctl check");
    }
}
