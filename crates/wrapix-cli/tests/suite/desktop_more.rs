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

/// The processes whose command line contains every one of `words`.
fn processes_with(words: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if words.iter().all(|w| cmd.contains(w)) {
            out.push(cmd);
        }
    }
    out
}

#[test]
fn dbus_forward_talks_to_the_named_names_only_through_the_proxy() {
    use std::io::BufRead;
    let Some(c) = Case::new() else { return };
    for p in [
        "dbus-daemon",
        "dbus-send",
        "dbus-test-tool",
        "xdg-dbus-proxy",
    ] {
        if !have(p) {
            return skip(&format!("{p} is missing (scripts/install-deps.sh --test installs dbus, dbus-tests and xdg-dbus-proxy)"));
        }
    }
    let run = runtime_dir(&c);
    let raw = run.join("bus");
    let listen = format!("--address=unix:path={}", raw.display());
    let mut bus = c.env.as_user(
        "dbus-daemon",
        &["--session", "--nofork", "--print-address=1", &listen],
    );
    c.clean_env(&mut bus);
    bus.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut bus = Killed(bus.spawn().unwrap());
    let mut address = String::new();
    std::io::BufReader::new(bus.0.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let address = address.trim().to_owned();
    assert!(address.starts_with("unix:path="), "{address}");
    let c = c
        .host_env("DBUS_SESSION_BUS_ADDRESS", &address)
        .host_env("XDG_RUNTIME_DIR", &run.to_string_lossy());
    // Two services on the bus: the allowed one and another, both answering every call.
    let service = |name: &str| {
        let mut cmd = c
            .env
            .as_user("dbus-test-tool", &["echo", &format!("--name={name}")]);
        c.clean_env(&mut cmd);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        Killed(cmd.spawn().unwrap())
    };
    let _allowed = service("org.wrapix.Allowed");
    let _other = service("org.wrapix.Other");
    let owned = |name: &str| {
        let out = c.host_as_user(
            "dbus-send",
            &[
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{name}"),
            ],
        );
        out.stdout.contains("boolean true")
    };
    wait_for("the test services' names", || {
        owned("org.wrapix.Allowed") && owned("org.wrapix.Other")
    });

    let probe = format!(
        "echo A=${{DBUS_SESSION_BUS_ADDRESS:-unset}}; ls {raw} 2>&1; \
         dbus-send --session --print-reply --dest=org.wrapix.Allowed / org.wrapix.Test.Ping >/dev/null 2>&1; echo allowed=$?; \
         dbus-send --session --print-reply --dest=org.wrapix.Other / org.wrapix.Test.Ping 2>&1; echo other=$?; \
         dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.ListNames 2>&1; echo list=$?",
        raw = raw.display()
    );
    // Negative control: the host has a bus, the run does not forward it.
    let out = c.sh_with(&["--network", "none"], &probe);
    assert!(out.stdout.contains("A=unset\n"), "{out}");
    assert!(out.stdout.contains("No such file"), "{out}");
    assert!(!out.stdout.contains("allowed=0"), "{out}");

    let out = c.sh_with(
        &["--network", "none", "--forward", "dbus=org.wrapix.Allowed"],
        &probe,
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("A=unix:path=/run/wrapix/dbus/bus\n"),
        "{out}"
    );
    // The raw bus stays out of reach; only the proxy's socket is there.
    assert!(out.stdout.contains("No such file"), "{out}");
    assert!(out.stdout.contains("allowed=0\n"), "{out}");
    assert!(!out.stdout.contains("other=0\n"), "{out}");
    // xdg-dbus-proxy answers ListNames itself, with only what the sandbox may see: the
    // other service, which the bus has, is not in it.
    assert!(
        out.stdout.contains("string \"org.wrapix.Allowed\""),
        "{out}"
    );
    assert!(!out.stdout.contains("org.wrapix.Other\""), "{out}");
    // The proxy ended with the run.
    let left = processes_with(&["xdg-dbus-proxy", &run.to_string_lossy()]);
    assert!(left.is_empty(), "the proxy outlived the run: {left:?}");
    drop(bus);
}

#[test]
fn nix_and_gpu_forwards_the_host_lacks_are_errors_naming_the_fix() {
    let Some(c) = Case::new() else { return };
    let daemon = Path::new("/nix/var/nix/daemon-socket/socket");
    let probe =
        "echo R=${NIX_REMOTE:-unset}; test -S /nix/var/nix/daemon-socket/socket && echo socket; \
                 ls -d /nix/store 2>&1; touch /nix/store/wrapix-x 2>&1 | grep -c 'Read-only'";
    if !Path::new("/nix/store").exists() {
        let out = c.sh_with(&["--network", "none", "--forward", "nix"], "true");
        assert_eq!(out.code, 125, "{out}");
        assert!(out.stderr.contains("has no /nix/store"), "{out}");
        assert!(
            out.stderr.contains("fix: install Nix in multi-user mode"),
            "{out}"
        );
    } else if !daemon.exists() {
        // A store without a daemon (single-user Nix, or one being installed).
        let out = c.sh_with(&["--network", "none", "--forward", "nix"], "true");
        assert_eq!(out.code, 125, "{out}");
        assert!(
            out.stderr
                .contains("no socket at /nix/var/nix/daemon-socket/socket"),
            "{out}"
        );
        assert!(out.stderr.contains("fix: start it"), "{out}");
    } else {
        // A host with Nix: the store (read-only) and the socket, nothing without the forward.
        let out = c.sh_with(&["--network", "none"], probe);
        assert!(out.stdout.starts_with("R=unset\nls: "), "{out}");
        let out = c.sh_with(&["--network", "none", "--forward", "nix"], probe);
        assert_eq!(out.stdout, "R=daemon\nsocket\n/nix/store\n1\n", "{out}");
    }
    let has_gpu = std::fs::read_dir("/dev/dri").is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("renderD")))
    }) || Path::new("/dev/nvidiactl").exists();
    if has_gpu {
        skip("this host has a GPU: the missing-GPU error cannot be shown here");
    } else {
        let out = c.sh_with(&["--network", "none", "--forward", "gpu"], "true");
        assert_eq!(out.code, 125, "{out}");
        assert!(out.stderr.contains("this host has none"), "{out}");
        assert!(
            out.stderr.contains("fix: install the GPU's kernel driver"),
            "{out}"
        );
    }
}

#[test]
fn config_show_and_doctor_name_the_new_forwards() {
    let Some(c) = Case::new() else { return };
    let out = c.run(&[
        "config",
        "show",
        "--forward",
        "audio",
        "--forward",
        "dbus=org.freedesktop.Notifications",
        "--forward",
        "gpu",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("forward.audio"), "{out}");
    assert!(
        out.stdout
            .contains("through xdg-dbus-proxy, talk to org.freedesktop.Notifications"),
        "{out}"
    );
    assert!(out.stdout.contains("forward.nix"), "{out}");
    let out = c.run(&["doctor"]);
    for line in ["audio = true", "dbus = [names]", "nix = true", "gpu = true"] {
        assert!(out.stdout.contains(line), "{line}: {out}");
    }
}

#[test]
fn locale_and_timezone_pass_through() {
    let Some(c) = Case::new() else { return };
    let c = c
        .host_env("LANG", "C.UTF-8")
        .host_env("LANGUAGE", "fr:en")
        .host_env("LC_TIME", "C.UTF-8")
        .host_env("LC_MEASUREMENT", "C")
        .host_env("TZ", "UTC0")
        .host_env("LC_EVIL", "x;y")
        .host_env("LCX", "no");
    let out = c.sh_with(
        &["--network", "none"],
        "env | grep -E '^(LANG|LANGUAGE|LC_[A-Z_]*|LCX|TZ)=' | sort",
    );
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        out.stdout,
        "LANG=C.UTF-8\nLANGUAGE=fr:en\nLC_EVIL=x;y\nLC_MEASUREMENT=C\nLC_TIME=C.UTF-8\nTZ=UTC0\n",
        "{out}"
    );
}

#[test]
fn wayland_forward_reaches_the_compositor_and_no_x() {
    let Some(c) = Case::new() else { return };
    if !have("weston") || !have("weston-info") {
        return skip("weston is missing (scripts/install-deps.sh --test installs weston; its headless backend is the compositor here)");
    }
    let run = runtime_dir(&c);
    let mut weston = c.env.as_user(
        "weston",
        &[
            "--backend=headless-backend.so",
            "--socket=wayland-wrapix",
            "--idle-time=0",
        ],
    );
    c.clean_env(&mut weston);
    weston
        .env("XDG_RUNTIME_DIR", &run)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut weston = Killed(weston.spawn().unwrap());
    let socket = run.join("wayland-wrapix");
    let start = Instant::now();
    while !socket.exists() {
        if let Some(status) = weston.0.try_wait().unwrap() {
            return skip(&format!(
                "weston --backend=headless-backend.so does not run here ({status})"
            ));
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "weston never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = c
        .host_env("XDG_RUNTIME_DIR", &run.to_string_lossy())
        .host_env("WAYLAND_DISPLAY", "wayland-wrapix");
    let probe = "echo W=${WAYLAND_DISPLAY:-unset} D=${DISPLAY:-unset}; ls -A /tmp/.X11-unix 2>&1; \
                 weston-info >/tmp/info 2>&1; echo rc=$?; grep -c \"interface: 'wl_compositor'\" /tmp/info";
    // Negative control: the host has a compositor, the run does not forward it.
    let out = c.sh_with(&["--network", "none"], probe);
    assert!(out.stdout.contains("W=unset D=unset\n"), "{out}");
    assert!(!out.stdout.contains("rc=0"), "{out}");

    let out = c.sh_with(&["--network", "none", "--forward", "wayland"], probe);
    assert!(
        out.stdout
            .contains("W=/run/wrapix/wayland/wayland-0 D=unset\n"),
        "{out}"
    );
    // No X: no socket folder at all.
    assert!(out.stdout.contains("No such file"), "{out}");
    assert!(out.stdout.contains("rc=0\n1\n"), "{out}");
    drop(weston);
}

/// A page of one colour, and that colour as a screenshot holds it (0xRRGGBB).
const PAGE: &str =
    "<!doctype html><html><body style=\"margin:0;background:#12ab34\"></body></html>\n";
const PAGE_PIXEL: u32 = 0x12ab34;

/// The pixel at (0, 0) of an 8-bit RGB or RGBA PNG (any number of IDAT chunks; the first
/// pixel's bytes are the same under every PNG filter, as nothing is left of or above it).
pub(super) fn first_png_pixel(png: &[u8]) -> u32 {
    use std::io::Read;
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert_eq!(png[24], 8, "not 8 bits per channel");
    let mut data = Vec::new();
    let mut i = 8;
    while i + 8 <= png.len() {
        let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
        if &png[i + 4..i + 8] == b"IDAT" {
            data.extend_from_slice(&png[i + 8..i + 8 + len]);
        }
        i += 12 + len;
    }
    let mut first = [0u8; 4];
    flate2::read::ZlibDecoder::new(&data[..])
        .read_exact(&mut first)
        .unwrap();
    u32::from_be_bytes([0, first[1], first[2], first[3]])
}

/// Chromium (Debian's) inside the `host` profile's sandbox: headless, it renders a local page
/// to PNG; its own sandbox cannot start inside ours (no user namespaces), so `--no-sandbox`;
/// headed on a private Xvfb, `wrapix screenshot` sees the page.
#[test]
fn chromium_renders_headless_and_headed_inside_the_sandbox() {
    let Some(c) = Case::new() else { return };
    if !have("chromium") {
        return skip("chromium is missing (scripts/install-deps.sh --test installs chromium and fonts-liberation)");
    }
    c.write(&c.project.join("page.html"), PAGE);
    let shot = "chromium --headless --disable-gpu --window-size=200,100 \
                --screenshot=/workspace/shot.png file:///workspace/page.html";

    // Chromium's own sandbox needs a user namespace (or a setuid helper), which ours forbids:
    // it refuses to start, and says so.
    let out = c.sh_with(&["--network", "none"], &format!("{shot} 2>&1; echo rc=$?"));
    assert!(out.stdout.contains("No usable sandbox"), "{out}");
    assert!(!c.project.join("shot.png").exists());

    let out = c.sh_with(
        &["--network", "none"],
        &shot.replace("--headless", "--headless --no-sandbox"),
    );
    assert_eq!(out.code, 0, "{out}");
    let png = std::fs::read(c.project.join("shot.png")).unwrap();
    assert_eq!(first_png_pixel(&png), PAGE_PIXEL, "{out}");

    // Headed, full screen on the sandbox's private display.
    let run = runtime_dir(&c);
    let c = c.host_env("XDG_RUNTIME_DIR", &run.to_string_lossy());
    let running = c.spawn(&[
        "run",
        "--network",
        "none",
        "--forward",
        "xvfb",
        "--",
        "chromium",
        "--no-sandbox",
        "--disable-gpu",
        "--kiosk",
        "--window-position=0,0",
        "--window-size=1280,1024",
        "file:///workspace/page.html",
    ]);
    let file = c.root.join("headed.png");
    let start = Instant::now();
    loop {
        let out = c.run(&["screenshot", "-o", &file.to_string_lossy()]);
        if out.code == 0 && first_png_pixel(&std::fs::read(&file).unwrap()) == PAGE_PIXEL {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the page never showed on the private display: {out}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    nix::sys::signal::kill(running.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = running.finish_within(Duration::from_secs(20));
}

#[test]
fn audio_forward_reaches_a_pipewire_only_host() {
    let Some(c) = Case::new() else { return };
    if !have("pipewire") || !have("pw-cli") {
        return skip(
            "pipewire or pw-cli is missing (scripts/install-deps.sh --test installs pipewire-bin)",
        );
    }
    let run = runtime_dir(&c);
    let mut pw = c.env.as_user("pipewire", &[]);
    c.clean_env(&mut pw);
    pw.env("XDG_RUNTIME_DIR", &run)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _pw = Killed(pw.spawn().unwrap());
    let socket = run.join("pipewire-0");
    wait_for("the PipeWire socket", || socket.exists());
    let c = c.host_env("XDG_RUNTIME_DIR", &run.to_string_lossy());
    let probe = "echo R=${PIPEWIRE_RUNTIME_DIR:-unset} S=${PULSE_SERVER:-unset}; \
                 timeout 10 pw-cli info 0 2>&1 | grep -c 'type: PipeWire:Interface:Core'";
    // Negative control: the host has PipeWire, the run does not forward it.
    let out = c.sh_with(&["--network", "none"], probe);
    assert!(out.stdout.starts_with("R=unset S=unset\n0\n"), "{out}");

    let out = c.sh_with(&["--network", "none", "--forward", "audio"], probe);
    // PipeWire's socket only (this host has no PulseAudio socket): the core answers.
    assert_eq!(out.stdout, "R=/run/wrapix/pipewire S=unset\n1\n", "{out}");
}
