//! `[forward]` audio, dbus, nix, gpu and the Wayland display against the real components, as
//! the unprivileged test user, each with a negative control: a PulseAudio server on the test's
//! own runtime folder records (from its null sink's monitor) the tone played inside; a session
//! bus of the test's own answers through wrapix's filtering proxy for the allowed name only.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::harness::{skip, Case};

fn have(program: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(program).exists())
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child of the test's, killed and reaped on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private runtime folder (0700, the test user's) under the case's root.
fn runtime_dir(c: &Case) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let run = c.root.join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    c.give(&run);
    run
}

/// The RMS amplitude `sox FILE -n stat` reports.
fn rms(c: &Case, file: &Path) -> f64 {
    let out = c.host_as_user("sox", &[&file.to_string_lossy(), "-n", "stat"]);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("RMS     amplitude"))
        .unwrap_or_else(|| panic!("no RMS in sox's output: {out}"));
    let v: f64 = line.rsplit(' ').next().unwrap().trim().parse().unwrap();
    assert!(!v.is_nan(), "sox measured nothing: {out}");
    v
}

/// Records the null sink's monitor on the host while `play` runs; returns the recording's RMS.
fn recorded_while(c: &Case, run: &Path, name: &str, play: impl FnOnce()) -> f64 {
    let file = c.project.join(name);
    let mut cmd = c.env.as_user(
        "parecord",
        &[
            "--device=wrapix_test.monitor",
            "--file-format=wav",
            &file.to_string_lossy(),
        ],
    );
    c.clean_env(&mut cmd);
    cmd.env("XDG_RUNTIME_DIR", run)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let rec = Killed(cmd.spawn().unwrap());
    // Recording has started once samples (not only the header) reach the file.
    wait_for("parecord to record", || {
        std::fs::metadata(&file).is_ok_and(|m| m.len() > 8192)
    });
    std::thread::sleep(Duration::from_millis(300));
    play();
    std::thread::sleep(Duration::from_millis(300));
    // SIGINT: parecord finishes the file (its header) and exits.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rec.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut rec = rec;
    let start = Instant::now();
    while rec.0.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    rms(c, &file)
}

#[test]
fn audio_forward_plays_into_the_hosts_sound_server() {
    let Some(c) = Case::new() else { return };
    if !have("pulseaudio") || !have("paplay") || !have("parecord") || !have("sox") {
        return skip("pulseaudio, paplay/parecord or sox is missing (scripts/install-deps.sh --test installs pulseaudio, pulseaudio-utils and sox)");
    }
    let run = runtime_dir(&c);
    let mut pa = c.env.as_user(
        "pulseaudio",
        &[
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--system=no",
            "--load=module-native-protocol-unix",
            "--load=module-null-sink sink_name=wrapix_test",
        ],
    );
    c.clean_env(&mut pa);
    pa.env("XDG_RUNTIME_DIR", &run)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _pa = Killed(pa.spawn().unwrap());
    let socket = run.join("pulse/native");
    wait_for("the PulseAudio socket", || socket.exists());

    let tone = c.project.join("tone.wav");
    let out = c.host_as_user(
        "sox",
        &[
            "-n",
            "-r",
            "44100",
            "-c",
            "2",
            &tone.to_string_lossy(),
            "synth",
            "1",
            "sine",
            "440",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let c = c.host_env("XDG_RUNTIME_DIR", &run.to_string_lossy());

    // Negative control: the host has a sound server, the run does not forward it.
    let mut out = None;
    let silent = recorded_while(&c, &run, "silent.wav", || {
        out = Some(c.sh_with(
            &["--network", "none"],
            "echo S=${PULSE_SERVER:-unset}; paplay /workspace/tone.wav 2>&1; echo rc=$?",
        ));
    });
    let out = out.unwrap();
    assert!(out.stdout.contains("S=unset"), "{out}");
    assert!(!out.stdout.contains("rc=0"), "{out}");
    assert!(
        silent < 0.001,
        "sound arrived without the forward: RMS {silent}"
    );

    let mut out = None;
    let heard = recorded_while(&c, &run, "heard.wav", || {
        out = Some(c.sh_with(
            &["--network", "none", "--forward", "audio"],
            "echo S=$PULSE_SERVER; ls -A /run/wrapix/pulse; paplay /workspace/tone.wav && echo played",
        ));
    });
    let out = out.unwrap();
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("S=unix:/run/wrapix/pulse/native\n"),
        "{out}"
    );
    assert!(out.stdout.contains("played"), "{out}");
    // A full-scale sine has an RMS of 0.707; sox's default synth is a bit below that.
    assert!(heard > 0.1, "the tone did not arrive: RMS {heard}");
}

#[test]
fn audio_forward_without_a_sound_server_is_an_error_naming_the_fix() {
    let Some(c) = Case::new() else { return };
    let run = runtime_dir(&c);
    let c = c.host_env("XDG_RUNTIME_DIR", &run.to_string_lossy());
    let out = c.sh_with(&["--network", "none", "--forward", "audio"], "true");
    assert_eq!(out.code, 125, "{out}");
    assert!(out.stderr.contains("has none running"), "{out}");
    assert!(out.stderr.contains("fix:"), "{out}");
}
