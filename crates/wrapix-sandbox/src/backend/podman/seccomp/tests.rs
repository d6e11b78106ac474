//! The Podman seccomp profile: pinned whole, and checked against the policy it comes from.

use super::*;

fn profile(arch: &str) -> serde_json::Value {
    let text = profile_json(arch).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

fn entries<'a>(p: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    p["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["names"][0] == name)
        .collect()
}

/// One line per rule: `syscall ACT_ERRNO(errno) [argN & MASK == VALUE | argN == VALUE]`.
fn render(p: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("?").replace("SCMP_", "");
    let mut out = format!(
        "default {} arch {}\n",
        s(&p["defaultAction"]),
        s(&p["architectures"][0])
    );
    for e in p["syscalls"].as_array().into_iter().flatten() {
        let (name, action) = (s(&e["names"][0]), s(&e["action"]));
        out.push_str(&format!("{name} {action}({})", e["errnoRet"]));
        for a in e["args"].as_array().into_iter().flatten() {
            let (i, v, v2) = (&a["index"], a["value"].as_u64(), a["valueTwo"].as_u64());
            let (v, v2) = (v.unwrap_or(0), v2.unwrap_or(0));
            match a["op"].as_str() {
                Some("SCMP_CMP_MASKED_EQ") => out.push_str(&format!(" arg{i} & {v:#x} == {v2:#x}")),
                Some("SCMP_CMP_EQ") => out.push_str(&format!(" arg{i} == {v:#x}")),
                op => out.push_str(&format!(" arg{i} {op:?}")),
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn profile_x86_64() {
    insta::assert_snapshot!(render(&profile("x86_64")));
}

#[test]
fn every_policy_rule_is_in_the_profile_with_its_errno() {
    let policy: Policy = load_policy().unwrap_or_else(|e| panic!("{e}"));
    for arch in ["x86_64", "aarch64"] {
        let p = profile(arch);
        assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
        for rule in &policy.rules {
            let found = entries(&p, &rule.syscall);
            let for_arch = rule
                .arch
                .as_ref()
                .is_none_or(|a| a.iter().any(|a| a == arch));
            assert_eq!(!found.is_empty(), for_arch, "{arch}: {}", rule.syscall);
            let want = u64::from(errno(rule.errno.as_deref()).unwrap_or_else(|e| panic!("{e}")));
            for e in found {
                assert_eq!(e["action"], "SCMP_ACT_ERRNO");
                if e["comment"] == rule.reason.as_str() {
                    assert_eq!(e["errnoRet"], want, "{}", rule.syscall);
                }
            }
        }
    }
    assert_eq!(profile("aarch64")["architectures"][0], "SCMP_ARCH_AARCH64");
    assert!(profile_json("riscv64").is_err());
}

#[test]
fn dword_conditions_compare_only_the_low_32_bits() {
    let p = profile("x86_64");
    let ioctl = entries(&p, "ioctl");
    let cmds: Vec<(u64, u64)> = ioctl
        .iter()
        .map(|e| {
            let a = &e["args"][0];
            assert_eq!(a["op"], "SCMP_CMP_MASKED_EQ");
            assert_eq!(a["index"], 1);
            (
                a["value"].as_u64().unwrap_or(0),
                a["valueTwo"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(cmds, [(0xffff_ffff, 0x5412), (0xffff_ffff, 0x541c)]);
    for name in ["unshare", "clone"] {
        let e = entries(&p, name);
        assert_eq!(e.len(), 1, "{name}");
        let a = &e[0]["args"][0];
        assert_eq!(
            (a["value"].as_u64(), a["valueTwo"].as_u64()),
            (Some(0x1000_0000), Some(0x1000_0000))
        );
    }
}

/// A deterministic spread of 32-bit values: the interesting ones and their neighbours, every
/// single bit, and a pseudo-random sweep.
fn samples(allowed: &[u32]) -> Vec<u32> {
    let mut v: Vec<u32> = Vec::new();
    for &a in allowed {
        v.extend([a, a.wrapping_add(1), a.wrapping_sub(1), a ^ 0x8000_0000, !a]);
    }
    v.extend((0..32).map(|b| 1u32 << b));
    v.extend((0..32).map(|b| !(1u32 << b)));
    let mut x: u32 = 0x2545_f491;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x);
        v.push(x & 0x000f_000f);
    }
    v
}

#[test]
fn outside_matches_exactly_the_values_not_allowed_and_never_twice() {
    for allowed in [
        vec![0x0, 0x8, 0x20000, 0x20008, 0x40000, 0xffff_ffff],
        vec![0],
        vec![u32::MAX],
        vec![1, 2, 3, 0x8000_0000],
        vec![],
    ] {
        let patterns = outside(&allowed);
        assert!(patterns.len() <= 32 * allowed.len().max(1), "{allowed:x?}");
        for x in samples(&allowed) {
            let hits = patterns.iter().filter(|(m, v)| x & m == *v).count();
            let want = usize::from(!allowed.contains(&x));
            assert_eq!(hits, want, "{x:#x} with allowed {allowed:x?}");
        }
    }
}

#[test]
fn personality_refuses_everything_but_the_allowed_personas_and_ignores_high_bits() {
    let p = profile("x86_64");
    let rules: Vec<(u64, u64)> = entries(&p, "personality")
        .iter()
        .map(|e| {
            let a = &e["args"][0];
            assert_eq!(a["op"], "SCMP_CMP_MASKED_EQ");
            (
                a["value"].as_u64().unwrap_or(0),
                a["valueTwo"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let refused = |x: u64| rules.iter().any(|(m, v)| x & m == *v);
    for ok in [
        0x0u64,
        0x8,
        0x20000,
        0x20008,
        0x40000,
        0xffff_ffff,
        0x1_0000_0008,
    ] {
        assert!(!refused(ok), "{ok:#x} refused");
    }
    for bad in [
        0x1u64,
        0x0040_0000,
        0x0100_0000,
        0x0800_0000,
        0x0200_0000,
        0xffff_fffe,
    ] {
        assert!(refused(bad), "{bad:#x} allowed");
    }
    assert!(rules.iter().all(|(m, _)| *m <= LOW32));
}

#[test]
fn what_the_format_cannot_say_is_an_error() {
    let rule = |args: &str| -> Rule {
        serde_json::from_str(&format!(
            r#"{{"syscall": "x", "reason": "r", "args": {args}}}"#
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let lt = rule(r#"[{"index": 0, "width": "dword", "op": "lt", "val": 5}]"#);
    assert!(arg_lists(&lt).is_err());
    let mixed = rule(
        r#"[{"index": 0, "width": "dword", "op": "eq", "val": 5},
            {"index": 0, "width": "dword", "op": "ne", "val": 6}]"#,
    );
    assert!(arg_lists(&mixed).is_err());
    let q = rule(r#"[{"index": 1, "width": "qword", "op": "eq", "val": "0x1"}]"#);
    let lists = arg_lists(&q).unwrap_or_else(|e| panic!("{e}"));
    let eq = LinuxSeccompArgBuilder::default()
        .index(1usize)
        .value(1u64)
        .op(Op::ScmpCmpEq)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lists, [[eq]]);
}
