//! `--backend apple` off a Mac: refused before anything starts (fail closed), with the reason,
//! from a flag and from a config; `wrapix doctor` says why.

use super::harness::Case;

#[test]
fn apple_backend_is_refused_off_macos_with_the_reason() {
    if cfg!(target_os = "macos") {
        return;
    }
    let Some(c) = Case::new() else { return };
    let out = c.run(&["run", "--backend", "apple", "--", "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(out.stderr.contains("not a Mac"), "{out}");
    assert!(out.stderr.contains("--backend bwrap"), "{out}");
    c.config("backend = \"apple\"\n");
    let out = c.run(&["run", "--", "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(out.stderr.contains("macOS 26"), "{out}");
    let out = c.run(&["doctor"]);
    assert!(out.stdout.contains("this host is not a Mac"), "{out}");
}
