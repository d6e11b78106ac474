//! The builder: mmdebstrap writes the root filesystem as a tar stream to stdout; wrapix unpacks
//! it into the build folder while recording the manifest (one pass), writes `image.json`, and
//! renames the folder into place.
//!
//! mmdebstrap runs in `--mode=unshare` as a normal user (no root, no setuid helper beyond
//! newuidmap) and `--mode=root` as root. npm and pip packages are installed by a
//! `--customize-hook` script that reads validated package lists from files.
//!
//! Where mmdebstrap is missing (macOS), it runs in a throw-away Linux container started by
//! Apple's `container` CLI ([`InContainer`]): the same arguments, the tar stream on the
//! container's stdout, unpacked here exactly as a local build's. Nothing of the host but the
//! staged hook folder (read-only) is shared with that container.
//!
//! Why a tar stream rather than `mmdebstrap … DIR`: in unshare mode a directory would be owned
//! by the user's subordinate UIDs, so the user could neither hash nor export nor delete it
//! without entering a user namespace. Unpacked from the stream, the files belong to the user,
//! the manifest keeps the owners and modes as built (for the OCI export), and the sandbox
//! sees the root read-only in every backend.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::error::ImageError;
use crate::manifest;
use crate::profile::{ImageSpec, BUILDER_VERSION, SUITE};
use crate::progress::Progress;
use crate::store::{Image, Lookup, Metadata, Store, MANIFEST, ROOTFS};

const CUSTOMIZE_HOOK: &str = include_str!("hooks/customize.sh");

/// How many of the build's last stderr lines are kept for an error, and how long each may be.
const LOG_LINES: usize = 400;
const LOG_LINE_MAX: usize = 2000;

/// The Linux image a build container starts from when none is configured.
pub const DEFAULT_BUILD_IMAGE: &str = "docker.io/library/debian:bookworm-slim";

/// The build container's entry (`sh -c`, a constant: the hook folder is `$1`, mmdebstrap's
/// arguments follow). It installs mmdebstrap (and npm when the image has npm packages) with
/// apt unless the container image has them, keeps stdout for the tar stream alone, and runs
/// mmdebstrap with exactly the arguments a local build uses.
pub const CONTAINER_SCRIPT: &str = r#"set -eu
hooks="$1"
shift
need=""
command -v mmdebstrap >/dev/null 2>&1 || need="mmdebstrap"
if [ -s "$hooks/npm.list" ] && ! command -v npm >/dev/null 2>&1; then need="$need npm"; fi
if [ -n "$need" ]; then
  echo "I: wrapix: installing$need in the build container" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends ca-certificates $need >&2
fi
exec mmdebstrap "$@"
"#;

/// A build in a throw-away Linux container: `CLI run --rm … IMAGE`, Docker-style arguments
/// as Apple's `container` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InContainer {
    /// The container CLI (`container` on a Mac).
    pub cli: PathBuf,
    /// The image the container starts from ([`DEFAULT_BUILD_IMAGE`] unless configured).
    pub image: String,
}

impl InContainer {
    /// The CLI's arguments for a build with the hook folder `hooks` and mmdebstrap's
    /// `args`. The container gets every capability: it is a VM of its own (Apple's
    /// `container` runs each container in one), mmdebstrap's root mode mounts and makes
    /// device nodes in its chroot, and the only host folder it sees is `hooks`, read-only.
    pub fn argv(&self, hooks: &Path, args: &[OsString]) -> Result<Vec<OsString>, ImageError> {
        let text = hooks.to_str().filter(|t| !t.contains([',', '='])).ok_or_else(|| {
            ImageError::Build {
                message: format!(
                    "the build's temporary folder {} cannot be passed to --mount (it must be UTF-8 without `,` or `=`)",
                    hooks.display()
                ),
                fix: "set TMPDIR to a plain folder such as /tmp".into(),
            }
        })?;
        let mut out: Vec<OsString> = [
            "run".to_owned(),
            "--rm".to_owned(),
            "--cap-add=ALL".to_owned(),
            format!("--mount=type=bind,source={text},target={text},readonly"),
            "--entrypoint=/bin/sh".to_owned(),
            self.image.clone(),
            "-c".to_owned(),
            CONTAINER_SCRIPT.to_owned(),
            "wrapix-image-build".to_owned(),
            text.to_owned(),
        ]
        .map(OsString::from)
        .into();
        out.extend(args.iter().cloned());
        Ok(out)
    }
}

/// Host facts the builder needs (passed in; nothing here reads the environment).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub mirror: String,
    /// `mmdebstrap` on the host.
    pub mmdebstrap: Option<PathBuf>,
    /// Build in a container instead of with the host's mmdebstrap (the default on macOS).
    pub in_container: Option<InContainer>,
    /// `npm` on the host (for `npm:` packages, installed with `--prefix` into the image).
    pub npm: Option<PathBuf>,
    /// A CA bundle trusted by npm and pip during the build (the host's, for TLS proxies).
    pub ca_bundle: Option<PathBuf>,
    pub as_root: bool,
    /// Where the hook scripts are staged (must be readable by the build's user namespace).
    pub tmp: PathBuf,
}

/// The Debian mirror: `$WRAPIX_DEBIAN_MIRROR`, else deb.debian.org (part of the image hash).
pub fn mirror(env: &std::collections::BTreeMap<String, String>) -> String {
    env.get("WRAPIX_DEBIAN_MIRROR")
        .filter(|m| {
            m.starts_with("http://") || m.starts_with("https://") || m.starts_with("file:/")
        })
        .cloned()
        .unwrap_or_else(|| crate::profile::DEFAULT_MIRROR.to_owned())
}

/// What [`ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The image was in the cache.
    Cached,
    /// It was built (after a corrupted entry was found, with the reason).
    Built { replaced_corrupted: Option<String> },
}

/// Returns the image for `spec`, building it if it is not cached. Concurrent calls for the
/// same spec build it once. With `verify`, an existing image is checked file by file against
/// its manifest and rebuilt if anything differs.
pub fn ensure(
    store: &Store,
    spec: &ImageSpec,
    opts: &BuildOptions,
    verify: bool,
    progress: &Progress,
) -> Result<(Image, Outcome), ImageError> {
    let hash = spec.hash(&opts.mirror);
    let check = |lookup: Lookup| -> Result<Option<Result<Image, String>>, ImageError> {
        Ok(match lookup {
            Lookup::Ready(img) if verify => {
                progress.step("verifying every file against the manifest");
                match store.verify(&img) {
                    Ok(()) => Some(Ok(img)),
                    Err(ImageError::Corrupted { detail, .. }) => Some(Err(detail)),
                    Err(e) => return Err(e),
                }
            }
            Lookup::Ready(img) => Some(Ok(img)),
            Lookup::Corrupted(why) => Some(Err(why)),
            Lookup::Missing => None,
        })
    };
    if let Some(Ok(img)) = check(store.lookup(&hash))? {
        return Ok((img, Outcome::Cached));
    }
    progress.step("waiting for the build lock");
    let _lock = store.lock(&hash)?;
    // Whoever held the lock may have built it.
    let replaced = match check(store.lookup(&hash))? {
        Some(Ok(img)) => return Ok((img, Outcome::Cached)),
        Some(Err(why)) => Some(why),
        None => None,
    };
    let img = build_locked(store, spec, &hash, opts, progress)?;
    Ok((
        img,
        Outcome::Built {
            replaced_corrupted: replaced,
        },
    ))
}

fn build_locked(
    store: &Store,
    spec: &ImageSpec,
    hash: &str,
    opts: &BuildOptions,
    progress: &Progress,
) -> Result<Image, ImageError> {
    enum Runner<'a> {
        Local(PathBuf),
        Container(&'a InContainer),
    }
    let runner = match &opts.in_container {
        Some(c) if !c.cli.is_file() => {
            return Err(ImageError::MissingTool {
                tool: "container (Apple's container CLI, which runs the image build on macOS)",
                fix: "install it from https://github.com/apple/container/releases and run `container system start`, or set WRAPIX_IMAGE_BUILDER=host where mmdebstrap is installed",
            })
        }
        Some(c) => Runner::Container(c),
        None => {
            let mmdebstrap = opts.mmdebstrap.clone().ok_or(ImageError::MissingTool {
                tool: "mmdebstrap",
                fix: "sudo apt-get install mmdebstrap uidmap",
            })?;
            if !spec.npms().is_empty() && opts.npm.is_none() {
                return Err(ImageError::MissingTool {
                    tool: "npm",
                    fix: "install Node.js and npm on the host (npm installs the image's npm: packages, including Claude Code)",
                });
            }
            Runner::Local(mmdebstrap)
        }
    };
    let hooks = stage_hooks(spec, opts)?;
    let build = store.temp_dir(hash)?;
    let rootfs = build.path().join(ROOTFS);
    std::fs::create_dir(&rootfs).map_err(|e| ImageError::io("create", &rootfs, e))?;

    let mode = match (&opts.in_container, opts.as_root) {
        // Root in the build container; `auto` also works where that container is not root.
        (Some(_), _) => "--mode=auto",
        (None, true) => "--mode=root",
        (None, false) => "--mode=unshare",
    };
    let args = mmdebstrap_args(spec, &hooks.path().join("customize"), &opts.mirror, mode);
    let (program, mut cmd) = match runner {
        Runner::Container(c) => {
            let mut cmd = Command::new(&c.cli);
            cmd.args(c.argv(hooks.path(), &args)?);
            (c.cli.clone(), cmd)
        }
        Runner::Local(mmdebstrap) => {
            let mut cmd = Command::new(&mmdebstrap);
            cmd.args(&args);
            if let Some(npm) = opts.npm.as_ref().and_then(|p| p.parent()) {
                // The hook finds the same npm (and its node) first on PATH.
                let path = std::env::var("PATH").unwrap_or_default();
                cmd.env("PATH", format!("{}:{path}", npm.display()));
            }
            (mmdebstrap, cmd)
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mmdebstrap = program;
    let started = std::time::Instant::now();
    progress.step("starting mmdebstrap");
    let mut child = cmd
        .spawn()
        .map_err(|e| ImageError::io("start", &mmdebstrap, e))?;
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = child.stderr.take();
    let log2 = log.clone();
    let steps = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let Some(err) = stderr else { return };
            let mut err = BufReader::new(err);
            while let Some(line) = bounded_line(&mut err, LOG_LINE_MAX) {
                if let Some(step) = line.strip_prefix("I: ") {
                    progress.step(step.trim_start_matches("wrapix: ").trim_end_matches("..."));
                }
                if let Ok(mut l) = log2.lock() {
                    // The tail is what an error shows; a flood from the build stays bounded.
                    if l.len() >= LOG_LINES {
                        l.remove(0);
                    }
                    l.push(line);
                }
            }
        });
        let res = match child.stdout.take() {
            Some(out) => manifest::unpack(out, &rootfs, &build.path().join(MANIFEST), opts.as_root),
            None => Err(ImageError::Build {
                message: "mmdebstrap has no output".into(),
                fix: String::new(),
            }),
        };
        // Drain whatever is left so mmdebstrap never blocks on a full pipe.
        let _ = reader.join();
        res
    });
    let status = child
        .wait()
        .map_err(|e| ImageError::io("wait for", &mmdebstrap, e))?;
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    if !status.success() {
        discard(build);
        // If unpacking failed first, mmdebstrap only saw its output pipe close.
        return Err(match steps {
            Err(e) => e,
            Ok(_) => build_failure(&log, status),
        });
    }
    let unpacked = match steps {
        Ok(u) => u,
        Err(e) => {
            discard(build);
            return Err(e);
        }
    };
    let meta = Metadata {
        hash: hash.to_owned(),
        spec: spec.clone(),
        mirror: opts.mirror.clone(),
        builder: BUILDER_VERSION,
        built_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        build_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        entries: unpacked.entries,
        bytes: unpacked.bytes,
        manifest_sha256: unpacked.manifest_sha256,
    };
    Store::write_metadata(build.path(), &meta)?;
    progress.step("moving the image into place");
    store.commit(build, hash)
}

/// The next line of `r` (lossy UTF-8, without its newline), cut to `max` bytes: the rest of a
/// longer line is read and dropped, so a line without an end cannot fill the memory. `None`
/// at the end of the stream or on an error.
fn bounded_line(r: &mut impl BufRead, max: usize) -> Option<String> {
    let mut buf = Vec::new();
    let mut over = false;
    loop {
        let chunk = r.fill_buf().ok()?;
        if chunk.is_empty() {
            return (!buf.is_empty() || over).then(|| String::from_utf8_lossy(&buf).into_owned());
        }
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1),
            None => (chunk, chunk.len()),
        };
        let room = max.saturating_sub(buf.len());
        over |= part.len() > room;
        buf.extend_from_slice(&part[..part.len().min(room)]);
        let ended = done > part.len();
        r.consume(done);
        if ended {
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
    }
}

/// mmdebstrap's arguments: the tar stream of a Debian `SUITE` root with the spec's packages on
/// stdout, the customize hook at `hook`.
pub fn mmdebstrap_args(spec: &ImageSpec, hook: &Path, mirror: &str, mode: &str) -> Vec<OsString> {
    [
        mode.to_owned(),
        "--variant=apt".to_owned(),
        "--format=tar".to_owned(),
        format!("--include={}", spec.debs().join(",")),
        format!("--customize-hook={}", hook.display()),
        SUITE.to_owned(),
        "-".to_owned(),
        mirror.to_owned(),
    ]
    .map(OsString::from)
    .into()
}

/// Removes a failed build folder (it contains read-only folders).
fn discard(build: tempfile::TempDir) {
    let path = build.keep();
    let _ = crate::store::remove_tree(&path);
}

/// The package manager's own words: apt's `E:` lines (or the tail of the log).
fn build_failure(log: &[String], status: std::process::ExitStatus) -> ImageError {
    let errors: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .filter(|l| {
            l.starts_with("E: ")
                || l.starts_with("npm ERR!")
                || l.starts_with("npm error")
                || l.starts_with("ERROR:")
        })
        .collect();
    // mmdebstrap's own final "E: mmdebstrap failed to run" says nothing: show what led to it.
    let lines: Vec<&str> = if errors.iter().all(|l| l.contains("mmdebstrap failed")) {
        let rest: Vec<&str> = log
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("I: "))
            .collect();
        rest[rest.len().saturating_sub(8)..].to_vec()
    } else {
        errors
    };
    let unknown = lines.iter().any(|l| l.contains("Unable to locate package"));
    ImageError::Build {
        message: format!(
            "mmdebstrap {status}; nothing was cached: {}",
            lines.join(" | ")
        ),
        fix: if unknown {
            "check the package names (`apt-cache search NAME` on a Debian bookworm host) in packages = [...] or the profile".into()
        } else {
            "see the messages above; `wrapix doctor` checks the builder's requirements".into()
        },
    }
}

/// Writes the hook script and the package lists to a fresh folder readable by the build's
/// user namespace (its root is a subordinate UID that cannot enter the user's private folders).
fn stage_hooks(spec: &ImageSpec, opts: &BuildOptions) -> Result<tempfile::TempDir, ImageError> {
    let dir = tempfile::Builder::new()
        .prefix("wrapix-build-")
        .tempdir_in(&opts.tmp)
        .map_err(|e| ImageError::io("create a folder in", &opts.tmp, e))?;
    let write = |name: &str, data: &[u8], mode: u32| -> Result<(), ImageError> {
        let p = dir.path().join(name);
        std::fs::write(&p, data).map_err(|e| ImageError::io("write", &p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| ImageError::io("set the mode of", &p, e))
    };
    let lines = |v: Vec<String>| v.iter().map(|l| format!("{l}\n")).collect::<String>();
    write("customize", CUSTOMIZE_HOOK.as_bytes(), 0o755)?;
    write("npm.list", lines(spec.npms()).as_bytes(), 0o644)?;
    write("pip.list", lines(spec.pips()).as_bytes(), 0o644)?;
    if let Some(ca) = &opts.ca_bundle {
        if let Ok(data) = std::fs::read(ca) {
            write("ca.crt", &data, 0o644)?;
        }
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| ImageError::io("set the mode of", dir.path(), e))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn spec() -> ImageSpec {
        crate::profile::builder_image()
    }

    #[test]
    fn stderr_lines_are_bounded() {
        let long = "x".repeat(10_000);
        let text = format!("I: one\n{long}\nlast without newline");
        let mut r = std::io::BufReader::with_capacity(64, text.as_bytes());
        assert_eq!(bounded_line(&mut r, 100).as_deref(), Some("I: one"));
        assert_eq!(bounded_line(&mut r, 100), Some("x".repeat(100)));
        assert_eq!(
            bounded_line(&mut r, 100).as_deref(),
            Some("last without newline")
        );
        assert_eq!(bounded_line(&mut r, 100), None);
    }

    #[test]
    fn the_container_build_passes_mmdebstrap_the_local_arguments_after_a_constant_script() {
        let c = InContainer {
            cli: "/usr/local/bin/container".into(),
            image: DEFAULT_BUILD_IMAGE.into(),
        };
        let hooks = Path::new("/var/folders/xy/T/wrapix-build-abc");
        let args = mmdebstrap_args(
            &spec(),
            &hooks.join("customize"),
            "http://deb.debian.org/debian",
            "--mode=auto",
        );
        let argv = c.argv(hooks, &args).unwrap();
        let text: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            text[..10],
            [
                "run",
                "--rm",
                "--cap-add=ALL",
                "--mount=type=bind,source=/var/folders/xy/T/wrapix-build-abc,target=/var/folders/xy/T/wrapix-build-abc,readonly",
                "--entrypoint=/bin/sh",
                "docker.io/library/debian:bookworm-slim",
                "-c",
                CONTAINER_SCRIPT,
                "wrapix-image-build",
                "/var/folders/xy/T/wrapix-build-abc",
            ]
        );
        assert_eq!(argv[10..], args[..]);
        assert_eq!(
            text[10..14],
            [
                "--mode=auto",
                "--variant=apt",
                "--format=tar",
                &format!("--include={}", spec().debs().join(",")),
            ]
        );
        assert_eq!(
            text[14..],
            [
                "--customize-hook=/var/folders/xy/T/wrapix-build-abc/customize",
                "bookworm",
                "-",
                "http://deb.debian.org/debian",
            ]
        );
        for bad in ["/tmp/a,b", "/tmp/a=b"] {
            let e = c.argv(Path::new(bad), &args).unwrap_err().to_string();
            assert!(e.contains("cannot be passed to --mount"), "{e}");
        }
    }

    /// The script run by `sh` as the container would: with a fake mmdebstrap it passes every
    /// argument through unchanged and keeps stdout for mmdebstrap alone; without one it asks
    /// apt for mmdebstrap (and npm only when the image has npm packages), on stderr.
    #[test]
    fn the_container_script_installs_what_is_missing_and_runs_mmdebstrap_with_the_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let hooks = dir.path().join("hooks");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&hooks).unwrap();
        // PATH is this folder alone: the host's own mmdebstrap or npm must not be found.
        let log = dir.path().join("apt.log");
        let write = |name: &str, text: String| {
            let p = bin.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        // apt-get logs its arguments and, on install, provides a fake mmdebstrap that prints
        // each argument in <>.
        let fake = dir.path().join("fake-mmdebstrap");
        std::fs::write(
            &fake,
            "#!/bin/sh\nfor a in \"$@\"; do printf '<%s>' \"$a\"; done\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/bin/cp", bin.join("cp")).unwrap();
        write(
            "apt-get",
            format!(
                "#!/bin/sh\necho \"apt-get $*\" >> '{log}'\n[ \"$1\" != install ] || cp '{fake}' '{bin}/mmdebstrap'\necho apt-output\n",
                log = log.display(),
                fake = fake.display(),
                bin = bin.display()
            ),
        );
        let run = |npm_list: &str| {
            std::fs::write(hooks.join("npm.list"), npm_list).unwrap();
            let out = Command::new("/bin/sh")
                .arg("-c")
                .arg(CONTAINER_SCRIPT)
                .arg("wrapix-image-build")
                .arg(&hooks)
                .args(["--include=a,b", "two words", "$(x)", "-"])
                .env("PATH", &bin)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        // Nothing installed: apt installs mmdebstrap; stdout is mmdebstrap's alone.
        let out = run("");
        assert_eq!(out, "<--include=a,b><two words><$(x)><->");
        let apt = std::fs::read_to_string(&log).unwrap();
        assert!(apt.contains("apt-get update"), "{apt}");
        assert!(
            apt.contains("install -y -q --no-install-recommends ca-certificates mmdebstrap\n"),
            "{apt}"
        );
        // mmdebstrap there now, npm packages wanted and no npm: npm alone is installed.
        std::fs::remove_file(&log).unwrap();
        let out = run("@anthropic-ai/claude-code@2\n");
        assert_eq!(out, "<--include=a,b><two words><$(x)><->");
        let apt = std::fs::read_to_string(&log).unwrap();
        assert!(
            apt.contains("install -y -q --no-install-recommends ca-certificates npm\n"),
            "{apt}"
        );
        assert!(!apt.contains("mmdebstrap"), "{apt}");
        // Everything there: apt is not run at all.
        std::fs::remove_file(&log).unwrap();
        write("npm", "#!/bin/sh\n".into());
        let out = run("@anthropic-ai/claude-code@2\n");
        assert_eq!(out, "<--include=a,b><two words><$(x)><->");
        assert!(!log.exists());
    }
}
