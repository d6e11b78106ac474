//! `wrapix doctor`: the host checks of every backend, then a real, throw-away sandbox for each
//! backend and network mode, started through the same path as `wrapix run` (this binary, in a
//! scratch project with no user config). Only what actually started is reported ready.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use wrapix_sandbox::backend::{Backend, Check, Entry, Locate, Probe, DEFAULT, REGISTRY};

use super::{install_checks, print_checks};
use crate::context::{host_env, host_user};

/// A trial sandbox gets this long (pasta's own limit is 10 s; a VM booted under TCG takes
/// ~10 s on an idle machine, several times that on a busy one).
const TRIAL_TIMEOUT: Duration = Duration::from_secs(90);

/// One trial start.
struct Trial {
    backend: &'static str,
    network: &'static str,
    /// `None`: not tried (the reason is in `detail`).
    started: Option<bool>,
    detail: String,
    fix: Option<String>,
    millis: Option<u128>,
}

pub fn doctor(as_json: bool) -> i32 {
    let env = host_env();
    let path = env.get("PATH").map(String::as_str);
    let user = host_user(&env);
    let at = Locate {
        env: &env,
        uid: user.uid,
        project: &user.home,
        resources: Default::default(),
    };
    let backends: Vec<(&Entry, Box<dyn Backend>, Probe)> = REGISTRY
        .iter()
        .map(|e| {
            let b = (e.locate)(&at);
            let probe = b.probe();
            (e, b, probe)
        })
        .collect();
    let mut sections: Vec<(String, Vec<Check>)> = backends
        .iter()
        .map(|(e, _, probe)| (format!("backend {}", e.summary), probe.checks.clone()))
        .collect();
    sections.extend([
        ("image builder".to_owned(), builder_checks(&env, path)),
        ("wrapix install".to_owned(), install_checks()),
        (
            "forwards ([forward], ports)".to_owned(),
            wrapix_sandbox::forward::doctor_checks(&env),
        ),
    ]);

    // The default backend is always tried for real (its trial is the truth, whatever the
    // checks say); the others when their checks pass and what they run from is there.
    let mut image = None;
    let mut trials = Vec::new();
    for (e, b, probe) in &backends {
        let name = e.name.name;
        for network in ["none", "open"] {
            trials.push(if name == DEFAULT {
                trial(name, network, &[])
            } else if !probe.usable() {
                not_tried(
                    name,
                    network,
                    "the checks above fail".into(),
                    format!("fix the {name} items marked FAIL"),
                )
            } else if name == "qemu" && network == "none" && !kvm_usable(probe) {
                // Under TCG a trial boots the VM in software (~10 s): one trial, `open`, which
                // runs everything `none` does and the network besides.
                not_tried(
                    name,
                    network,
                    "KVM is not usable, and under TCG each trial boots the VM in software (~10 s): the `open` trial below covers the same VM".into(),
                    "`wrapix run --backend qemu --network none -- true` tries it".into(),
                )
            } else if b.needs_image() {
                match image.get_or_insert_with(|| base_image_ready(&env)) {
                    Err(why) => not_tried(
                        name,
                        network,
                        why.clone(),
                        "`wrapix image build --profile base` builds it (about a minute), then run `wrapix doctor` again".into(),
                    ),
                    Ok(()) => trial(name, network, &["--profile", "base"]),
                }
            } else {
                trial(name, network, &[])
            });
        }
    }
    let ready = trials
        .iter()
        .any(|t| t.backend == DEFAULT && t.network == "open" && t.started == Some(true));
    if as_json {
        print_json(&sections, &trials, ready);
    } else {
        print_text(&sections, &trials, ready);
    }
    if ready {
        0
    } else {
        1
    }
}

/// Whether a backend's probe found KVM usable (the qemu backend's `KVM` check).
fn kvm_usable(probe: &Probe) -> bool {
    probe.checks.iter().any(|c| c.name == "KVM" && c.ok)
}

fn not_tried(backend: &'static str, network: &'static str, why: String, fix: String) -> Trial {
    Trial {
        backend,
        network,
        started: None,
        detail: format!("not tried: {why}"),
        fix: Some(fix),
        millis: None,
    }
}

/// `wrapix run -C SCRATCH --backend B --network N -- true`, as a child of this binary, with
/// an empty user config and state folder, bounded in time.
fn trial(backend: &'static str, network: &'static str, extra: &[&str]) -> Trial {
    let fail = |detail: String, fix: &str| Trial {
        backend,
        network,
        started: Some(false),
        detail,
        fix: Some(fix.to_owned()),
        millis: None,
    };
    let scratch = match tempfile::Builder::new().prefix("wrapix-doctor-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            return fail(
                format!("cannot create a scratch folder: {e}"),
                "check $TMPDIR",
            )
        }
    };
    let project = scratch.path().join("project");
    let made = std::fs::create_dir(&project)
        .and_then(|()| std::fs::create_dir(scratch.path().join("config")))
        .and_then(|()| std::fs::create_dir(scratch.path().join("state")));
    if let Err(e) = made {
        return fail(
            format!("cannot create a scratch folder: {e}"),
            "check $TMPDIR",
        );
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return fail(
                format!("cannot find the wrapix binary: {e}"),
                "reinstall wrapix",
            )
        }
    };
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("-C")
        .arg(&project)
        .args(["--backend", backend, "--network", network])
        .args(extra)
        .args(["--", "true"])
        .env("XDG_CONFIG_HOME", scratch.path().join("config"))
        .env("XDG_STATE_HOME", scratch.path().join("state"))
        .env_remove("WRAPIX_BACKEND")
        .env_remove("WRAPIX_PROFILE")
        .current_dir(&project)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start wrapix: {e}"), "reinstall wrapix"),
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() < TRIAL_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let millis = start.elapsed().as_millis();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    match status {
        Some(s) if s.success() => Trial {
            backend,
            network,
            started: Some(true),
            detail: format!("a sandbox started and ran `true` ({millis} ms)"),
            fix: None,
            millis: Some(millis),
        },
        Some(s) => {
            let (detail, fix) = split_fix(&stderr);
            fail(
                format!("did not start ({s}): {detail}"),
                fix.as_deref()
                    .unwrap_or("read the message above; `wrapix run` says the same"),
            )
        }
        None => fail(
            format!("no answer within {} s", TRIAL_TIMEOUT.as_secs()),
            "check /dev/net/tun (sudo chmod 0666 /dev/net/tun) and pasta, or use --network none",
        ),
    }
}

/// wrapix's one-line error, without its `wrapix: error:` prefix, and its `(fix: …)` part.
fn split_fix(stderr: &str) -> (String, Option<String>) {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("wrapix: error:"))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no message")
        .trim_start_matches("wrapix: error:")
        .trim();
    match line.rfind("(fix: ") {
        Some(i) if line.ends_with(')') => (
            line[..i].trim().to_owned(),
            Some(line[i + 6..line.len() - 1].to_owned()),
        ),
        _ => (line.to_owned(), None),
    }
}

/// Whether the `base` profile's image is built (for backends that run from an image; the
/// doctor does not build one).
fn base_image_ready(env: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    let args = crate::cli::SandboxArgs {
        project: Some(std::env::temp_dir()),
        profile: Some("base".into()),
        ..Default::default()
    };
    super::images::image_ready(&args, env)
}

fn mark(t: &Trial) -> &'static str {
    match t.started {
        Some(true) => "ok  ",
        Some(false) if t.backend == DEFAULT => "FAIL",
        _ => "warn",
    }
}

fn print_text(sections: &[(String, Vec<Check>)], trials: &[Trial], ready: bool) {
    for (name, checks) in sections {
        println!("{name}:");
        print_checks(checks);
    }
    println!("sandboxes (started for real):");
    for t in trials {
        let label = format!("{}, network {}", t.backend, t.network);
        println!("  [{}] {label:<36} {}", mark(t), t.detail);
        if let (Some(fix), false) = (&t.fix, t.started == Some(true)) {
            println!("         fix: {fix}");
        }
    }
    if ready {
        println!(
            "\nready: `wrapix` starts sandboxes with the {DEFAULT} backend and the open network"
        );
    } else {
        println!("\nNOT ready: the default sandbox ({DEFAULT}, network open) did not start; fix the items marked FAIL above");
    }
}

fn print_json(sections: &[(String, Vec<Check>)], trials: &[Trial], ready: bool) {
    let checks: Vec<serde_json::Value> = sections
        .iter()
        .flat_map(|(section, checks)| {
            checks.iter().map(move |c| {
                json!({
                    "section": section,
                    "name": c.name,
                    "ok": c.ok,
                    "required": c.required,
                    "detail": c.detail,
                    "fix": c.fix,
                })
            })
        })
        .collect();
    let sandboxes: Vec<serde_json::Value> = trials
        .iter()
        .map(|t| {
            json!({
                "backend": t.backend,
                "network": t.network,
                "tried": t.started.is_some(),
                "ready": t.started == Some(true),
                "detail": t.detail,
                "fix": t.fix,
                "ms": t.millis,
            })
        })
        .collect();
    let doc = json!({"ready": ready, "checks": checks, "sandboxes": sandboxes});
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
}

/// The image builder's checks for the builder `WRAPIX_IMAGE_BUILDER` selects.
fn builder_checks(
    env: &std::collections::BTreeMap<String, String>,
    path: Option<&str>,
) -> Vec<Check> {
    match super::images::options(env) {
        Ok(opts) => wrapix_sandbox::doctor::builder_checks(
            path,
            opts.in_container.as_ref().map(|c| c.cli.as_path()),
        ),
        Err(f) => vec![Check::fail(
            "WRAPIX_IMAGE_BUILDER",
            f.message,
            "unset WRAPIX_IMAGE_BUILDER, or set it to host or container",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fix_is_split_from_wrapix_errors() {
        let (d, f) = split_fix("noise\nwrapix: error: could not set up the sandbox network: pasta failed (fix: run `wrapix doctor`, or run with --network none)\n");
        assert_eq!(d, "could not set up the sandbox network: pasta failed");
        assert_eq!(
            f.as_deref(),
            Some("run `wrapix doctor`, or run with --network none")
        );
        assert_eq!(split_fix("odd").0, "odd");
    }
}
