//! Bad input: exit code 2, exactly one line `wrapix: error: …` naming the key (and the file and
//! line for config errors) with a `fix:`, and nothing created on the host.

use super::harness::Case;

struct Bad {
    what: &'static str,
    /// The project's wrapix.toml, if any.
    config: Option<&'static str>,
    /// Arguments after `wrapix`; `{data}` is replaced by an existing folder.
    args: &'static [&'static str],
    /// Must appear in the message (the key, or the flag).
    names: &'static [&'static str],
    /// The config line the message must point at (`wrapix.toml:LINE:`).
    line: Option<usize>,
}

const CASES: &[Bad] = &[
    Bad {
        what: "unknown key",
        config: Some("profile = \"host\"\nprofiel = \"host\"\n"),
        args: &["run", "--", "true"],
        names: &["profiel"],
        line: Some(2),
    },
    Bad {
        what: "wrong type",
        config: Some("network = 3\n"),
        args: &["run", "--", "true"],
        names: &["network"],
        line: Some(1),
    },
    Bad {
        what: "require_kvm not a boolean",
        config: Some("network = \"none\"\nrequire_kvm = \"yes\"\n"),
        args: &["run", "--", "true"],
        names: &["require_kvm"],
        line: Some(2),
    },
    Bad {
        what: "--require-kvm without the qemu backend",
        config: None,
        args: &["run", "--backend", "bwrap", "--require-kvm", "--", "true"],
        names: &["--require-kvm"],
        line: None,
    },
    Bad {
        what: "missing mount source (config)",
        config: Some("[[mounts]]\nsource = \"/nonexistent-wrapix-src\"\ndest = \"/data\"\n"),
        args: &["run", "--", "true"],
        names: &["mounts[0].source", "/nonexistent-wrapix-src"],
        line: Some(2),
    },
    Bad {
        what: "missing mount source (flag)",
        config: None,
        args: &[
            "run",
            "--mount",
            "/nonexistent-wrapix-src:/data",
            "--",
            "true",
        ],
        names: &["--mount", "/nonexistent-wrapix-src"],
        line: None,
    },
    Bad {
        what: "relative dest (flag)",
        config: None,
        args: &["run", "--mount", "{data}:data", "--", "true"],
        names: &["--mount", "relative"],
        line: None,
    },
    Bad {
        what: "relative dest (config)",
        config: Some("[[mounts]]\nsource = \"{data}\"\ndest = \"data\"\n"),
        args: &["run", "--", "true"],
        names: &["mounts[0].dest"],
        line: Some(3),
    },
    Bad {
        what: "dest over /workspace",
        config: Some("\n[[mounts]]\nsource = \"{data}\"\ndest = \"/workspace\"\nmode = \"rw\"\n"),
        args: &["run", "--", "true"],
        names: &["mounts[0].dest", "/workspace"],
        line: Some(4),
    },
    Bad {
        what: "dest inside /workspace (flag)",
        config: None,
        args: &["run", "--mount", "{data}:/workspace/sub:rw", "--", "true"],
        names: &["--mount", "/workspace"],
        line: None,
    },
    Bad {
        what: "env name with `=` (config)",
        config: Some("[env]\n\"A=B\" = \"x\"\n"),
        args: &["run", "--", "true"],
        names: &["env.A=B"],
        line: Some(2),
    },
    Bad {
        what: "env name starting with a digit (flag)",
        config: None,
        args: &["run", "-e", "1A=x", "--", "true"],
        names: &["env", "1A"],
        line: None,
    },
    Bad {
        what: "NUL in env name (config)",
        config: Some("[env]\n\"A\\u0000\" = \"x\"\n"),
        args: &["run", "--", "true"],
        names: &["env.A"],
        line: Some(2),
    },
    Bad {
        what: "escape sequence in env name (config)",
        config: Some("[env]\n\"A\\u001b]0;pwned\\u0007\" = \"x\"\n"),
        args: &["run", "--", "true"],
        names: &["env.A"],
        line: Some(2),
    },
    Bad {
        what: "unknown backend",
        config: None,
        args: &["run", "--backend", "nope", "--", "true"],
        names: &["backend", "nope"],
        line: None,
    },
    Bad {
        what: "unknown profile (flag)",
        config: None,
        args: &["run", "--profile", "nope", "--", "true"],
        names: &["profile", "nope"],
        line: None,
    },
    Bad {
        what: "unknown profile (config)",
        config: Some("profile = \"nope\"\n"),
        args: &["run", "--", "true"],
        names: &["profile", "nope"],
        line: Some(1),
    },
    Bad {
        what: "unknown network",
        config: None,
        args: &["run", "--network", "maybe", "--", "true"],
        names: &["network", "maybe"],
        line: None,
    },
    Bad {
        what: "project folder does not exist",
        config: None,
        args: &["run", "-C", "/nonexistent-wrapix-project", "--", "true"],
        names: &["project", "/nonexistent-wrapix-project"],
        line: None,
    },
    Bad {
        what: "deploy key does not exist",
        config: None,
        args: &["run", "--deploy-key", "nokey", "--", "true"],
        names: &["deploy_key", "nokey"],
        line: None,
    },
];

/// Checks one case; returns a description of what is wrong, if anything.
fn check(c: &Case, bad: &Bad) -> Option<String> {
    let data = c.root.join("data");
    let fill = |s: &str| s.replace("{data}", &data.to_string_lossy());
    let config = c.project.join("wrapix.toml");
    if let Some(text) = bad.config {
        c.write(&config, &fill(text));
    }
    let before = Case::listing(&c.root);
    let args: Vec<String> = bad.args.iter().map(|a| fill(a)).collect();
    let out = c.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let after = Case::listing(&c.root);
    let _ = std::fs::remove_file(&config);

    let mut problems = Vec::new();
    if out.code != 2 {
        problems.push(format!("exit code {} instead of 2", out.code));
    }
    let err = &out.stderr;
    if err.lines().count() != 1 || !err.ends_with('\n') {
        problems.push("stderr is not exactly one line".to_owned());
    }
    if err.trim_end_matches('\n').chars().any(char::is_control) {
        problems.push("stderr holds control characters".to_owned());
    }
    if !err.starts_with("wrapix: error:") {
        problems.push("stderr does not start with `wrapix: error:`".to_owned());
    }
    if !err.contains("fix:") {
        problems.push("no `fix:`".to_owned());
    }
    for name in bad.names {
        if !err.contains(name) {
            problems.push(format!("does not name {name:?}"));
        }
    }
    if let Some(line) = bad.line {
        let at = format!("{}:{line}:", config.display());
        if !err.contains(&at) {
            problems.push(format!("does not point at {at}"));
        }
    }
    if !out.stdout.is_empty() {
        problems.push("prints on stdout".to_owned());
    }
    if before != after {
        let new: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
        problems.push(format!("changed the host: new {new:?}"));
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{}: {}\n    stderr: {:?}",
            bad.what,
            problems.join("; "),
            out.stderr
        )
    })
}

#[test]
fn bad_input_exits_2_with_one_line_and_creates_nothing() {
    let Some(c) = Case::new() else { return };
    c.write(&c.root.join("data/f"), "x");
    let failures: Vec<String> = CASES.iter().filter_map(|bad| check(&c, bad)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases are wrong:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn valid_input_is_accepted() {
    let Some(c) = Case::new() else { return };
    // `-e A=B=C` is a valid flag (the name is `A`), and config show does not run anything.
    let before = Case::listing(&c.root);
    let out = c.run(&["config", "show", "-e", "A=B=C"]);
    assert!(out.ok().contains("A=B=C"), "{out}");
    assert_eq!(
        Case::listing(&c.root),
        before,
        "config show changed the host"
    );
    let out = c.run(&["run", "--dry-run", "--network", "none", "--", "true"]);
    assert!(out.ok().contains("--unshare-net"), "{out}");
}

#[test]
fn dry_run_changes_nothing_on_the_host() {
    let Some(c) = Case::new() else { return };
    c.host_as_user("git", &["init", "-q"]).ok();
    std::fs::remove_dir_all(c.project.join(".git/hooks")).unwrap();
    let before = Case::listing(&c.root);
    let out = c.run(&["run", "--dry-run", "--", "true"]);
    assert!(out.ok().contains("bwrap"), "{out}");
    let after = Case::listing(&c.root);
    let new: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(new.is_empty(), "--dry-run created {new:?}");
}
