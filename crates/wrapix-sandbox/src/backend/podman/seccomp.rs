//! wrapix's seccomp policy as an OCI seccomp profile, for `podman run --security-opt
//! seccomp=FILE`: the same rules bubblewrap's filter is compiled from (`seccomp/policy.json`,
//! with the default [`crate::seccomp::SeccompOptions`]), instead of Podman's default profile,
//! which lets a container create user namespaces (and mount in them), use kernel keyrings and
//! push input into its terminal with `TIOCSTI`.
//!
//! The profile allows by default and makes each listed syscall fail with the policy's errno,
//! as the bwrap filter does. Two differences in the format need care:
//! - libseccomp compares 64-bit values. A `dword` condition compares the low 32 bits only
//!   (the kernel ignores the high bits of, say, `ioctl`'s command), so it becomes a masked
//!   comparison with the mask cut to 32 bits: `ioctl(fd, 0x1_0000_5412)` is refused too.
//! - runc ORs several conditions on the same argument. The policy's only rule of that kind
//!   (`personality`: "not one of these values", an AND of `ne`) becomes one rule per masked
//!   pattern of the values *outside* the allowed set ([`outside`]).
//!
//! Anything else the format cannot say exactly is an error, never a weaker profile.
//! Architecture: only the native ABI is listed; libseccomp gives other ABIs (i386, x32) its
//! bad-architecture action (the process is killed) instead of the rules. Podman's default
//! allowlist is replaced, not added to: the few syscalls only it refuses (`kcmp`, `vmsplice`,
//! ...) are allowed, as under bubblewrap (docs/security.md).
//!
//! The policy file is read with the same types as the bwrap filter's (`crate::seccomp`).

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator as Op, LinuxSyscall, LinuxSyscallBuilder,
};
use serde::Serialize;

use crate::seccomp::SeccompError;

use crate::seccomp::{
    errno_value as errno, load_policy, Policy, PolicyCond as Cond, PolicyRule as Rule,
};

/// The profile Podman reads: the OCI runtime spec's seccomp object (oci-spec's types), with
/// each syscall entry carrying the Docker-format `comment` (the policy's reason), which Podman
/// accepts and [`LinuxSyscall`] has no field for. `seccomp` holds everything but the syscalls.
#[derive(Debug, Serialize)]
struct Profile {
    #[serde(flatten)]
    seccomp: LinuxSeccomp,
    syscalls: Vec<Entry>,
}

#[derive(Debug, Serialize)]
struct Entry {
    #[serde(flatten)]
    syscall: LinuxSyscall,
    comment: String,
}

const LOW32: u64 = 0xffff_ffff;

fn invalid(rule: &Rule, why: &str) -> SeccompError {
    SeccompError::PolicyInvalid(format!(
        "the rule for `{}` cannot be expressed as a Podman seccomp profile: {why}",
        rule.syscall
    ))
}

/// A masked comparison: `value` is the mask and `value_two` the operand (runc's order).
fn masked_eq(index: u8, mask: u64, value: u64) -> Result<LinuxSeccompArg, SeccompError> {
    Ok(LinuxSeccompArgBuilder::default()
        .index(index)
        .value(mask)
        .value_two(value)
        .op(Op::ScmpCmpMaskedEq)
        .build()?)
}

/// One condition as a libseccomp comparison with the same meaning (`eq` and `masked_eq`).
fn arg(rule: &Rule, c: &Cond) -> Result<LinuxSeccompArg, SeccompError> {
    let val = c.val.value()?;
    let width = match c.width.as_str() {
        "dword" => LOW32,
        "qword" => u64::MAX,
        w => return Err(invalid(rule, &format!("unknown width {w}"))),
    };
    let mask = match (c.op.as_str(), &c.mask) {
        ("eq", None) => width,
        ("masked_eq", Some(m)) => m.value()? & width,
        (op, _) => return Err(invalid(rule, &format!("`{op}` alone on an argument"))),
    };
    if mask == u64::MAX {
        Ok(LinuxSeccompArgBuilder::default()
            .index(c.index)
            .value(val)
            .op(Op::ScmpCmpEq)
            .build()?)
    } else {
        masked_eq(c.index, mask, val & mask)
    }
}

/// Masked patterns `(mask, value)` over 32 bits that together match exactly the values not
/// in `allowed`, and never overlap: the branches of the binary trie of `allowed` that hold
/// none of its values. At most 32 patterns per allowed value.
fn outside(allowed: &[u32]) -> Vec<(u32, u32)> {
    fn walk(set: &[u32], bit: u32, mask: u32, prefix: u32, out: &mut Vec<(u32, u32)>) {
        let b = 1u32 << bit;
        let mask = mask | b;
        for value in [prefix, prefix | b] {
            let sub: Vec<u32> = set.iter().copied().filter(|v| v & mask == value).collect();
            if sub.is_empty() {
                out.push((mask, value));
            } else if bit > 0 {
                walk(&sub, bit - 1, mask, value, out);
            }
        }
    }
    let mut out = Vec::new();
    if allowed.is_empty() {
        out.push((0, 0));
    } else {
        walk(allowed, 31, 0, 0, &mut out);
    }
    out
}

/// The argument lists of one policy rule: the syscall fails when any list matches.
fn arg_lists(rule: &Rule) -> Result<Vec<Vec<LinuxSeccompArg>>, SeccompError> {
    let mut indexes: Vec<u8> = rule.args.iter().map(|c| c.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    if indexes.len() == rule.args.len() {
        // Conditions on different arguments: runc ANDs them, as the policy means.
        let args = rule
            .args
            .iter()
            .map(|c| arg(rule, c))
            .collect::<Result<_, _>>()?;
        return Ok(vec![args]);
    }
    // Several conditions on one argument: only "dword not one of these values" is used.
    let all_ne = rule
        .args
        .iter()
        .all(|c| c.op == "ne" && c.mask.is_none() && c.width == "dword");
    if indexes.len() != 1 || !all_ne {
        return Err(invalid(
            rule,
            "several conditions on one argument other than dword `ne`",
        ));
    }
    let mut allowed = Vec::new();
    for c in &rule.args {
        let v = c.val.value()?;
        let v = u32::try_from(v).map_err(|_| invalid(rule, "a dword value above 32 bits"))?;
        allowed.push(v);
    }
    outside(&allowed)
        .into_iter()
        .map(|(mask, value)| Ok(vec![masked_eq(indexes[0], mask.into(), value.into())?]))
        .collect()
}

fn oci_arch(arch: &str) -> Result<Arch, SeccompError> {
    match arch {
        "x86_64" => Ok(Arch::ScmpArchX86_64),
        "aarch64" => Ok(Arch::ScmpArchAarch64),
        other => Err(SeccompError::UnsupportedArch(other.to_owned())),
    }
}

/// The profile for `arch` (`std::env::consts::ARCH`), as JSON.
pub(super) fn profile_json(arch: &str) -> Result<String, SeccompError> {
    let policy: Policy = load_policy()?;
    let mut syscalls = Vec::new();
    for rule in &policy.rules {
        if rule
            .arch
            .as_ref()
            .is_some_and(|a| !a.iter().any(|a| a == arch))
        {
            continue;
        }
        match rule.unless.as_deref() {
            // The default options, as bwrap gets: no user namespaces.
            None | Some("allow_user_namespaces") => {}
            Some(o) => return Err(SeccompError::PolicyInvalid(format!("unknown option {o}"))),
        }
        let errno_ret = errno(rule.errno.as_deref())?;
        let lists = if rule.args.is_empty() {
            vec![Vec::new()]
        } else {
            arg_lists(rule)?
        };
        for args in lists {
            let mut syscall = LinuxSyscallBuilder::default()
                .names(vec![rule.syscall.clone()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(errno_ret);
            if !args.is_empty() {
                syscall = syscall.args(args);
            }
            syscalls.push(Entry {
                syscall: syscall.build()?,
                comment: rule.reason.clone(),
            });
        }
    }
    let profile = Profile {
        seccomp: LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .architectures(vec![oci_arch(arch)?])
            .build()?,
        syscalls,
    };
    Ok(serde_json::to_string_pretty(&profile)?)
}

#[cfg(test)]
mod tests;
