//! Profiles and images end to end: bad input, one small real image built once per machine and
//! reused (`/tmp/wrapix-test-images`, keyed by the spec hash), runs from it with bubblewrap and
//! podman, and a corrupted cache entry. The full `base` profile builds only with
//! `WRAPIX_TEST_FULL_IMAGE=1` (CI sets it).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::harness::{skip, Case, Out};

/// A run that may build an image: minutes on a cold cache, longer than the harness's timeout
/// for sandbox runs (a build is bounded by apt's and npm's own timeouts).
fn run_long(c: &Case, args: &[&str]) -> Out {
    let o = c
        .command(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The shared store; its images belong to the test user.
const SHARED: &str = "/tmp/wrapix-test-images";
const TINY: &str = "profile = \"tiny\"\n[profiles.tiny]\npackages = [\"jq\", \"bash\"]\n";
/// One build at a time within this process (the store's lock covers other processes).
static BUILD: Mutex<()> = Mutex::new(());

fn have(prog: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(prog).exists())
}

/// A case whose project selects the tiny profile and whose images are shared.
fn tiny_case() -> Option<Case> {
    if !have("mmdebstrap") {
        skip("mmdebstrap is not installed (sudo apt-get install mmdebstrap uidmap)");
        return None;
    }
    let c = Case::new()?.host_env("XDG_DATA_HOME", SHARED);
    std::fs::create_dir_all(SHARED).ok()?;
    c.give(Path::new(SHARED));
    c.config(TINY);
    Some(c)
}

fn build(c: &Case) -> PathBuf {
    let _g = BUILD.lock();
    let out = run_long(c, &["image", "build"]);
    assert_eq!(out.code, 0, "{out}");
    PathBuf::from(out.stdout.trim())
}

#[test]
fn bad_profiles_and_packages_are_refused_before_anything_is_built() {
    let Some(c) = Case::new() else { return };
    let cases: &[(&str, &str)] = &[
        ("profile = \"nope\"\n", "unknown profile \"nope\""),
        (
            "profile = \"a\"\n[profiles.a]\nextends = \"b\"\n[profiles.b]\nextends = \"a\"\n",
            "cycle: a -> b -> a",
        ),
        (
            "profile = \"base\"\npackages = [\"npm:Bad Name\"]\n",
            "not a valid npm package name",
        ),
        (
            "profile = \"base\"\npackages = [\"pip:ruff>=1\"]\n",
            "only an exact NAME==VERSION",
        ),
    ];
    for (config, want) in cases {
        c.write(&c.project.join("wrapix.toml"), config);
        let out = c.run(&["run", "--", "true"]);
        assert_eq!(out.code, 2, "{config}\n{out}");
        assert!(out.stderr.contains(want), "{config}\n{out}");
        assert!(
            out.stderr.contains("wrapix.toml:"),
            "file:line missing: {out}"
        );
        assert!(
            !c.home.join(".local/share/wrapix").exists(),
            "nothing may be created"
        );
    }
}

#[test]
fn profile_list_and_show() {
    let Some(c) = Case::new() else { return };
    c.config(TINY);
    let out = c.run(&["profile", "list"]);
    assert_eq!(out.code, 0, "{out}");
    for p in ["host", "base", "rust", "python", "browser", "tiny"] {
        assert!(out.stdout.contains(p), "{out}");
    }
    let out = c.run(&["profile", "show", "python"]);
    assert!(out.stdout.contains("pip      ruff ty uv"), "{out}");
    assert!(out.stdout.contains("@anthropic-ai/claude-code@"), "{out}");
}

#[test]
fn tiny_image_runs_read_only_in_bwrap_and_podman_and_survives_corruption() {
    let Some(c) = tiny_case() else { return };
    let dir = build(&c);
    // Warm: the image is reused, not rebuilt.
    let out = c.sh_with(&["--network", "none"], "jq --version && touch /usr/x");
    assert!(out.stdout.contains("jq-1.6"), "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");

    if have("podman") {
        let out = c.sh_with(
            &["--backend", "podman", "--network", "none"],
            "id -u; grep CapEff /proc/self/status; echo x > /workspace/p",
        );
        assert_eq!(out.code, 0, "{out}");
        assert!(out.stdout.contains(&c.env.uid.to_string()), "{out}");
        assert!(out.stdout.contains("0000000000000000"), "{out}");
        let meta = std::fs::metadata(c.project.join("p")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.uid(), c.env.uid, "files in /workspace stay the user's");
        // `open` is pasta, as under bwrap: it runs with a host service on 0.0.0.0 (escape_net
        // shows that service stays out of reach).
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let out = c.sh_with(&["--backend", "podman"], "true");
        assert_eq!(out.code, 0, "{out}");
        drop(l);
    } else {
        skip("podman is not installed");
    }

    // Verification after the runs: nothing wrote into the cached image.
    let out = run_long(&c, &["image", "build"]);
    assert!(out.stderr.contains("every file matches"), "{out}");

    // A corrupted entry is detected on the launch path and rebuilt, never used.
    let _g = BUILD.lock();
    let meta = dir.join("image.json");
    let saved = std::fs::read(&meta).unwrap();
    std::fs::write(&meta, b"{ garbage").unwrap();
    let out = c.run(&["image", "list"]);
    assert!(out.stdout.contains("corrupted"), "{out}");
    let out = run_long(&c, &["run", "--network", "none", "--", "jq", "--version"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("was corrupted"), "{out}");
    assert_ne!(std::fs::read(&meta).unwrap(), b"{ garbage");
    drop(saved);
}

#[test]
fn unknown_package_fails_with_apts_message_and_caches_nothing() {
    let Some(c) = tiny_case() else { return };
    c.config("profile = \"t\"\n[profiles.t]\npackages = [\"no-such-package-wrapix\"]\n");
    let out = run_long(&c, &["image", "build"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr
            .contains("Unable to locate package no-such-package-wrapix"),
        "{out}"
    );
    let list = c.run(&["image", "list"]);
    assert!(!list.stdout.contains(" t "), "{list}");
}

#[test]
fn full_base_profile_builds_and_runs_claude() {
    if std::env::var("WRAPIX_TEST_FULL_IMAGE").as_deref() != Ok("1") {
        skip("the full base image build is slow; set WRAPIX_TEST_FULL_IMAGE=1 (CI does)");
        return;
    }
    let Some(c) = tiny_case() else { return };
    c.config("profile = \"base\"\n");
    build(&c);
    let out = c.sh_with(
        &["--network", "none"],
        "claude --version && rg --version && fdfind --version",
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("Claude Code"), "{out}");
}

/// The `browser` profile: Debian's Chromium renders a local page headless and headed on a
/// private Xvfb (with
/// `--no-sandbox`: its own sandbox needs user namespaces, which wrapix's forbids; see
/// docs/desktop.md), and the automation tools' variables name it.
#[test]
fn full_browser_profile_renders_a_page_headless_and_headed() {
    if std::env::var("WRAPIX_TEST_FULL_IMAGE").as_deref() != Ok("1") {
        skip("the browser image build is slow (base + Chromium); set WRAPIX_TEST_FULL_IMAGE=1 (CI does)");
        return;
    }
    let Some(c) = tiny_case() else { return };
    c.config("profile = \"browser\"\n");
    build(&c);
    c.write(
        &c.project.join("page.html"),
        "<!doctype html><html><body style=\"margin:0;background:#12ab34\"></body></html>\n",
    );
    let out = c.sh_with(
        &["--network", "none"],
        "echo P=$PUPPETEER_EXECUTABLE_PATH C=$CHROME_PATH; \
         chromium --headless --no-sandbox --disable-gpu --window-size=200,100 \
         --screenshot=/workspace/shot.png file:///workspace/page.html",
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("P=/usr/bin/chromium C=/usr/bin/chromium"),
        "{out}"
    );
    let png = std::fs::read(c.project.join("shot.png")).unwrap();
    assert_eq!(
        super::desktop_more::first_png_pixel(&png),
        0x12ab34,
        "{out}"
    );

    // Headed, on the sandbox's private display: `wrapix screenshot` sees the page.
    let run = c.root.join("run");
    std::fs::create_dir(&run).unwrap();
    c.give(&run);
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
    let start = std::time::Instant::now();
    loop {
        let out = c.run(&["screenshot", "-o", &file.to_string_lossy()]);
        if out.code == 0
            && super::desktop_more::first_png_pixel(&std::fs::read(&file).unwrap()) == 0x12ab34
        {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the page never showed on the private display: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    nix::sys::signal::kill(running.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = running.finish_within(std::time::Duration::from_secs(20));
}

/// A mount whose destination is missing below a folder of the image (/opt/abi, /usr/local/abi)
/// works with bubblewrap: the folder is split into binds of its entries, stays read-only, and
/// the cached image is not written.
#[test]
fn mounts_below_image_folders_work_and_leave_the_image_alone() {
    let Some(c) = tiny_case() else { return };
    let dir = build(&c);
    let data = c.root.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), "mounted\n").unwrap();
    c.give(&data);
    for dest in ["/opt/abi", "/usr/local/abi"] {
        let mount = format!("{}:{dest}", data.display());
        let out = c.sh_with(
            &["--network", "none", "--mount", &mount],
            &format!("cat {dest}/f; ls /usr/bin/jq; touch /opt/new /usr/local/new 2>&1 | wc -l"),
        );
        assert_eq!(out.ok(), "mounted\n/usr/bin/jq\n2\n", "{dest}: {out}");
    }
    assert!(dir.join("rootfs/opt").is_dir() && dir.join("rootfs/usr/local").is_dir());
    for leftover in ["opt/abi", "usr/local/abi", "opt/new"] {
        assert!(
            !dir.join("rootfs").join(leftover).exists(),
            "{leftover} was created in the cached image"
        );
    }
}

/// A stand-in for Apple's `container` CLI: it accepts only the build's argument shape (a
/// read-only folder mounted at its own path, every capability, `/bin/sh` as the entrypoint),
/// logs the arguments, and runs the entrypoint on this host, where mmdebstrap is installed.
const FAKE_CONTAINER: &str = r#"#!/bin/bash
set -eu
printf '%s\n' "$@" > "$HOME/container-argv.log"
[ "$1" = run ] || { echo "fake container: only run" >&2; exit 64; }
shift
while :; do
  case "$1" in
    --rm|--cap-add=ALL) shift ;;
    --mount=type=bind,source=*,target=*,readonly)
      m="${1#--mount=type=bind,source=}"; src="${m%%,target=*}"; rest="${m#*,target=}"
      [ "$src" = "${rest%,readonly}" ] || { echo "fake container: $src mounted elsewhere" >&2; exit 64; }
      shift ;;
    --entrypoint=/bin/sh) shift; break ;;
    *) echo "fake container: unexpected $1" >&2; exit 64 ;;
  esac
done
shift
exec /bin/sh "$@"
"#;

/// `WRAPIX_IMAGE_BUILDER=container` (macOS's default): the same image, under the same hash,
/// built by mmdebstrap in a container whose tar stream wrapix unpacks; it runs. A bad builder
/// name and a missing CLI are refused with the fix, and nothing is cached.
#[test]
fn an_image_built_in_a_container_is_the_same_image_and_runs() {
    let Some(shared) = tiny_case() else { return };
    let host_built = build(&shared);
    let Some(c) = Case::new() else { return };
    let store = tempfile::Builder::new()
        .prefix("wrapix-test-container-build-")
        .tempdir_in("/tmp")
        .unwrap();
    c.give(store.path());
    let bin = c.home.join("fake-bin");
    c.write_executable(&bin.join("container"), FAKE_CONTAINER);
    c.config(TINY);

    let bad = c
        .command(&["image", "build"])
        .env("WRAPIX_IMAGE_BUILDER", "docker")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("WRAPIX_IMAGE_BUILDER=\"docker\""),
        "{stderr}"
    );

    let c = c
        .host_env("XDG_DATA_HOME", &store.path().to_string_lossy())
        .host_env("WRAPIX_IMAGE_BUILDER", "container")
        .host_env("WRAPIX_BUILD_IMAGE", "example.test/debian:bookworm");
    let missing = run_long(&c, &["image", "build"]);
    assert_eq!(missing.code, 125, "{missing}");
    assert!(
        missing.stderr.contains("Apple's container CLI")
            && missing.stderr.contains("WRAPIX_IMAGE_BUILDER=host"),
        "{missing}"
    );
    let list = c.run(&["image", "list"]);
    assert!(!list.stdout.contains("tiny"), "nothing is cached: {list}");

    let c = c.host_env(
        "PATH",
        &format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
    );
    let out = run_long(&c, &["image", "build"]);
    assert_eq!(out.code, 0, "{out}");
    let built = PathBuf::from(out.stdout.trim());
    assert!(built.starts_with(store.path()), "{out}");
    assert_eq!(
        built.file_name(),
        host_built.file_name(),
        "the builder is not part of the image's hash"
    );
    let argv = std::fs::read_to_string(c.home.join("container-argv.log")).unwrap();
    for want in [
        "--cap-add=ALL",
        "example.test/debian:bookworm",
        "--mode=auto",
        "--format=tar",
    ] {
        assert!(argv.lines().any(|l| l == want), "{want} missing:\n{argv}");
    }
    let out = c.sh_with(&["--network", "none"], "jq --version; touch /usr/x");
    assert!(out.stdout.contains("jq-1.6"), "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    // Its files match the manifest the unpacking wrote.
    let out = run_long(&c, &["image", "build"]);
    assert!(out.stderr.contains("every file matches"), "{out}");
}
