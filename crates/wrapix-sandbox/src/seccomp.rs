//! The sandbox's seccomp filter, in the spirit of Flatpak's and Docker's default profiles.
//!
//! The policy is data: `seccomp/policy.json` lists every rule with the reason it exists. The
//! default action is *allow*; a matching rule makes the syscall fail with an errno (`EPERM` for
//! most, `ENOSYS` where programs should treat the call as missing and fall back). Highlights:
//! kernel keyrings, the terminal-injection ioctls `TIOCSTI`/`TIOCLINUX` (cmd compared as 32
//! bits, like Flatpak, since the kernel ignores the high bits), kernel (un)loading, `bpf`,
//! `perf_event_open`, `userfaultfd`, host administration (clock, swap, quota, reboot, ...), and,
//! unless [`SeccompOptions::allow_user_namespaces`], new user namespaces (`unshare`/`clone` with
//! `CLONE_NEWUSER`; `clone3` gets `ENOSYS` because seccomp cannot read its flags, so libc falls
//! back to `clone`) and mounting. `setns` stays allowed.
//!
//! The result is a raw classic-BPF program (`struct sock_filter` array, native endian), the
//! format bubblewrap reads from `--seccomp FD`; bwrap installs it just before exec'ing the
//! command (after its own mounts), so it binds the command and all its descendants.
//!
//! Limits:
//! - It is a denylist: syscalls added by future kernels are allowed until listed here.
//! - Only the native ABI is filtered. seccompiler starts the program with an architecture check
//!   that kills the process (`SECCOMP_RET_KILL_PROCESS`, SIGSYS) for any other ABI, so i386
//!   compat syscalls (`int 0x80`, 32-bit binaries) on x86_64 and AArch32 on aarch64 cannot
//!   bypass the rules, but 32-bit programs cannot run in the sandbox at all.
//! - x32 syscalls on x86_64 carry the native audit arch with bit `0x4000_0000` set in the
//!   number; a guard we insert after the arch check fails all of them with `EPERM`.
//! - Argument checks only see integers: pointers (paths, `clone3`'s struct) cannot be inspected.
//! - Only x86_64 and aarch64 (little endian) are supported.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use serde::Deserialize;

const POLICY_JSON: &str = include_str!("seccomp/policy.json");

/// Options that change the filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompOptions {
    /// Let the sandboxed command create user namespaces (and mount inside them), e.g. for
    /// nested containers. Drops the rules marked `"unless": "allow_user_namespaces"`.
    pub allow_user_namespaces: bool,
}

/// Why building the filter failed; each variant names the failed step.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("parsing the seccomp policy data: {0}")]
    PolicyParse(#[from] serde_json::Error),
    #[error("invalid seccomp policy data: {0}")]
    PolicyInvalid(String),
    #[error("seccomp filtering is not supported on architecture {0} (supported: x86_64, aarch64)")]
    UnsupportedArch(String),
    #[error("the seccomp policy names syscall `{name}`, which is unknown on {arch}")]
    UnknownSyscall { name: String, arch: String },
    #[error("building the seccomp rule for `{syscall}`: {source}")]
    Rule {
        syscall: String,
        source: seccompiler::BackendError,
    },
    #[error("compiling the seccomp filter: {0}")]
    Compile(#[from] seccompiler::BackendError),
    #[error("post-processing the compiled seccomp filter: {0}")]
    Assemble(String),
    #[error("building the Podman seccomp profile: {0}")]
    OciProfile(#[from] oci_spec::OciSpecError),
}

/// `seccomp/policy.json` as written (the format is documented in that file); also read by
/// the podman backend, which turns it into an OCI profile.
#[derive(Debug, Deserialize)]
pub(crate) struct Policy {
    pub(crate) rules: Vec<PolicyRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyRule {
    pub(crate) syscall: String,
    pub(crate) reason: String,
    #[serde(default)]
    pub(crate) errno: Option<String>,
    #[serde(default)]
    pub(crate) args: Vec<PolicyCond>,
    #[serde(default)]
    pub(crate) arch: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) unless: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyCond {
    pub(crate) index: u8,
    pub(crate) width: String,
    pub(crate) op: String,
    pub(crate) val: Num,
    #[serde(default)]
    pub(crate) mask: Option<Num>,
}

/// A number in the policy: JSON integer or a `"0x.."`/decimal string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Num {
    Int(u64),
    Str(String),
}

impl Num {
    pub(crate) fn value(&self) -> Result<u64, SeccompError> {
        let parsed = match self {
            Num::Int(n) => return Ok(*n),
            Num::Str(s) => match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            },
        };
        parsed.map_err(|e| SeccompError::PolicyInvalid(format!("bad number {self:?}: {e}")))
    }
}

pub(crate) fn load_policy() -> Result<Policy, SeccompError> {
    Ok(serde_json::from_str(POLICY_JSON)?)
}

/// The denied syscalls, for `wrapix doctor`/docs: (name, reason) pairs from the policy data,
/// in policy order, regardless of architecture and options (a syscall with several
/// argument-dependent rules, like `ioctl`, appears once per rule).
pub fn denied_syscalls() -> Vec<(String, String)> {
    match load_policy() {
        Ok(policy) => policy
            .rules
            .into_iter()
            .map(|r| (r.syscall, r.reason))
            .collect(),
        Err(e) => vec![("<policy error>".to_owned(), e.to_string())],
    }
}

/// The compiled default filter as the bytes bwrap's --seccomp FD expects.
pub fn default_filter_bytes(opts: SeccompOptions) -> Result<Vec<u8>, SeccompError> {
    let program = compile(std::env::consts::ARCH, opts)?;
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for ins in &program {
        bytes.extend_from_slice(&ins.code.to_ne_bytes());
        bytes.push(ins.jt);
        bytes.push(ins.jf);
        bytes.extend_from_slice(&ins.k.to_ne_bytes());
    }
    Ok(bytes)
}

fn target_arch(arch: &str) -> Result<TargetArch, SeccompError> {
    // Syscall numbers come from `libc` for the build target, so only the host arch can work.
    let supported = matches!(arch, "x86_64" | "aarch64")
        && arch == std::env::consts::ARCH
        && cfg!(target_endian = "little");
    if !supported {
        return Err(SeccompError::UnsupportedArch(arch.to_owned()));
    }
    TargetArch::try_from(arch).map_err(|_| SeccompError::UnsupportedArch(arch.to_owned()))
}

/// The errno a rule names (default `EPERM`); also used for the podman profile.
pub(crate) fn errno_value(name: Option<&str>) -> Result<u32, SeccompError> {
    let errno = match name.unwrap_or("EPERM") {
        "EPERM" => libc::EPERM,
        "ENOSYS" => libc::ENOSYS,
        "EACCES" => libc::EACCES,
        "EINVAL" => libc::EINVAL,
        other => {
            return Err(SeccompError::PolicyInvalid(format!(
                "unknown errno {other}"
            )))
        }
    };
    Ok(errno.unsigned_abs())
}

fn condition(c: &PolicyCond) -> Result<SeccompCondition, SeccompError> {
    let width = match c.width.as_str() {
        "dword" => SeccompCmpArgLen::Dword,
        "qword" => SeccompCmpArgLen::Qword,
        w => return Err(SeccompError::PolicyInvalid(format!("unknown width {w}"))),
    };
    let op = match (c.op.as_str(), &c.mask) {
        ("masked_eq", Some(mask)) => SeccompCmpOp::MaskedEq(mask.value()?),
        ("eq", None) => SeccompCmpOp::Eq,
        ("ne", None) => SeccompCmpOp::Ne,
        ("ge", None) => SeccompCmpOp::Ge,
        ("gt", None) => SeccompCmpOp::Gt,
        ("le", None) => SeccompCmpOp::Le,
        ("lt", None) => SeccompCmpOp::Lt,
        (op, mask) => {
            let msg = format!("bad op {op} (mask {mask:?}; only masked_eq takes one)");
            return Err(SeccompError::PolicyInvalid(msg));
        }
    };
    Ok(SeccompCondition::new(c.index, width, op, c.val.value()?)?)
}

/// Syscalls per errno; per syscall `None` means "always", `Some(rules)` "if any rule matches".
type Groups = BTreeMap<u32, BTreeMap<i64, Option<Vec<SeccompRule>>>>;

fn compile(arch: &str, opts: SeccompOptions) -> Result<BpfProgram, SeccompError> {
    let target = target_arch(arch)?;
    let mut groups = Groups::new();
    for rule in load_policy()?.rules {
        if rule
            .arch
            .as_ref()
            .is_some_and(|a| !a.iter().any(|a| a == arch))
        {
            continue;
        }
        match rule.unless.as_deref() {
            None => {}
            Some("allow_user_namespaces") if opts.allow_user_namespaces => continue,
            Some("allow_user_namespaces") => {}
            Some(o) => return Err(SeccompError::PolicyInvalid(format!("unknown option {o}"))),
        }
        let nr = syscall_nr(&rule.syscall).ok_or_else(|| SeccompError::UnknownSyscall {
            name: rule.syscall.clone(),
            arch: arch.to_owned(),
        })?;
        let entry = groups
            .entry(errno_value(rule.errno.as_deref())?)
            .or_default();
        let slot = entry.entry(nr).or_insert_with(|| Some(Vec::new()));
        if rule.args.is_empty() {
            *slot = None;
        } else if let Some(rules) = slot {
            let conds = rule.args.iter().map(condition).collect::<Result<_, _>>()?;
            let built = SeccompRule::new(conds).map_err(|source| SeccompError::Rule {
                syscall: rule.syscall.clone(),
                source,
            })?;
            rules.push(built);
        }
    }
    if groups.is_empty() {
        groups.insert(libc::EPERM.unsigned_abs(), BTreeMap::new());
    }

    // seccompiler gives one match action per filter, so compile one filter per errno.
    let mut segments = Vec::new();
    for (errno, syscalls) in groups {
        let rules = syscalls
            .into_iter()
            .map(|(nr, r)| (nr, r.unwrap_or_default()))
            .collect();
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
            target,
        )?;
        segments.push(BpfProgram::try_from(filter)?);
    }
    if target == TargetArch::x86_64 {
        if let Some(first) = segments.first_mut() {
            insert_x32_guard(first)?;
        }
    }
    let program = chain(segments);
    if program.len() > BPF_MAXINSNS {
        return Err(SeccompError::Assemble(format!(
            "{} instructions",
            program.len()
        )));
    }
    Ok(program)
}

const BPF_MAXINSNS: usize = 4096;
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JA: u16 = 0x05; // BPF_JMP | BPF_JA
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// Instructions of seccompiler's arch check: `ld arch; jeq AUDIT_ARCH, 1, 0; ret KILL_PROCESS`.
const ARCH_CHECK_LEN: usize = 3;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Inserts, right after seccompiler's arch check, a guard failing x32 syscalls with EPERM
/// (nr >= 0x4000_0000, except nr == -1, which tracers use to skip a call, like libseccomp).
///
/// Jump offsets stay valid: classic BPF only jumps forward, relative to the next instruction.
/// The only jump before the insertion point is the arch check's `jt = 1`, which skips the
/// `ret KILL` and now lands on the guard's first instruction; the guard's own exits land on
/// seccompiler's original instruction 3; every other jump starts and ends after the guard.
fn insert_x32_guard(prog: &mut BpfProgram) -> Result<(), SeccompError> {
    let check_ok = prog.len() > ARCH_CHECK_LEN
        && prog[0].code == BPF_LD_W_ABS
        && prog[0].k == 4 // offsetof(struct seccomp_data, arch)
        && (prog[1].code, prog[1].jt, prog[1].jf) == (BPF_JEQ_K, 1, 0)
        && (prog[2].code, prog[2].k) == (BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS);
    if !check_ok {
        return Err(SeccompError::Assemble(
            "unexpected arch check from seccompiler".into(),
        ));
    }
    let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM.unsigned_abs();
    let guard = [
        ins(BPF_LD_W_ABS, 0, 0, 0),            // A = seccomp_data.nr
        ins(BPF_JGE_K, 0, 2, X32_SYSCALL_BIT), // not x32 -> original code
        ins(BPF_JEQ_K, 1, 0, u32::MAX),        // nr == -1 -> original code
        ins(BPF_RET_K, 0, 0, eperm),           // x32 -> EPERM
    ];
    prog.splice(ARCH_CHECK_LEN..ARCH_CHECK_LEN, guard);
    Ok(())
}

/// Concatenates segments: in every segment but the last, each `ret ALLOW` ("no rule matched
/// here") becomes `ja` to the first instruction after the segment, so the next segment decides.
/// The replacement is one instruction for one, so all offsets inside a segment stay valid, and
/// `ja` has a 32-bit offset, so any segment length works.
fn chain(segments: Vec<BpfProgram>) -> BpfProgram {
    let count = segments.len();
    let mut out = BpfProgram::new();
    for (i, mut segment) in segments.into_iter().enumerate() {
        if i + 1 < count {
            let len = segment.len();
            for (j, ins) in segment.iter_mut().enumerate() {
                if ins.code == BPF_RET_K && ins.k == libc::SECCOMP_RET_ALLOW {
                    *ins = sock_filter {
                        code: BPF_JA,
                        jt: 0,
                        jf: 0,
                        k: (len - j - 1) as u32,
                    };
                }
            }
        }
        out.append(&mut segment);
    }
    out
}

/// Syscall numbers for the build target, for every name the policy may use.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn syscall_nr(name: &str) -> Option<i64> {
    use libc::*;
    let nr = match name {
        "keyctl" => SYS_keyctl,
        "add_key" => SYS_add_key,
        "request_key" => SYS_request_key,
        "ioctl" => SYS_ioctl,
        "unshare" => SYS_unshare,
        "clone" => SYS_clone,
        "clone3" => SYS_clone3,
        "mount" => SYS_mount,
        "umount2" => SYS_umount2,
        "pivot_root" => SYS_pivot_root,
        "fsopen" => SYS_fsopen,
        "fsconfig" => SYS_fsconfig,
        "fsmount" => SYS_fsmount,
        "fspick" => SYS_fspick,
        "open_tree" => SYS_open_tree,
        "move_mount" => SYS_move_mount,
        "mount_setattr" => SYS_mount_setattr,
        "perf_event_open" => SYS_perf_event_open,
        "bpf" => SYS_bpf,
        "userfaultfd" => SYS_userfaultfd,
        "kexec_load" => SYS_kexec_load,
        "kexec_file_load" => SYS_kexec_file_load,
        "init_module" => SYS_init_module,
        "finit_module" => SYS_finit_module,
        "delete_module" => SYS_delete_module,
        "acct" => SYS_acct,
        "swapon" => SYS_swapon,
        "swapoff" => SYS_swapoff,
        "reboot" => SYS_reboot,
        "syslog" => SYS_syslog,
        "quotactl" => SYS_quotactl,
        "quotactl_fd" => SYS_quotactl_fd,
        "open_by_handle_at" => SYS_open_by_handle_at,
        "name_to_handle_at" => SYS_name_to_handle_at,
        "lookup_dcookie" => SYS_lookup_dcookie,
        "nfsservctl" => SYS_nfsservctl,
        "settimeofday" => SYS_settimeofday,
        "clock_settime" => SYS_clock_settime,
        "vhangup" => SYS_vhangup,
        "personality" => SYS_personality,
        "fchmod" => SYS_fchmod,
        "fchmodat" => SYS_fchmodat,
        "fchmodat2" => SYS_fchmodat2,
        "io_uring_setup" => SYS_io_uring_setup,
        "io_uring_enter" => SYS_io_uring_enter,
        "io_uring_register" => SYS_io_uring_register,
        #[cfg(target_arch = "x86_64")]
        "chmod" => SYS_chmod,
        #[cfg(target_arch = "x86_64")]
        "iopl" => SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        "ioperm" => SYS_ioperm,
        #[cfg(target_arch = "x86_64")]
        "uselib" => SYS_uselib,
        _ => return None,
    };
    Some(nr)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn syscall_nr(_name: &str) -> Option<i64> {
    None
}

#[cfg(test)]
mod tests;
