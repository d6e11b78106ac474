//! The builder: mmdebstrap writes the root filesystem as a tar stream to stdout; wrapix unpacks
//! it into the build folder while recording the manifest (one pass), writes `image.json`, and
//! renames the folder into place.
//!
//! mmdebstrap runs in `--mode=unshare` as a normal user (no root, no setuid helper beyond
//! newuidmap) and `--mode=root` as root. npm and pip packages are installed by a
//! `--customize-hook` script that reads validated package lists from files.
//!
//! Why a tar stream rather than `mmdebstrap … DIR`: in unshare mode a directory would be owned
//! by the user's subordinate UIDs, so the user could neither hash nor export nor delete it
//! without entering a user namespace. Unpacked from the stream, the files belong to the user,
//! the manifest keeps the owners and modes as built (for the OCI export), and the sandbox
//! sees the root read-only in every backend.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::error::ImageError;
use crate::manifest;
use crate::profile::{ImageSpec, BUILDER_VERSION, SUITE};
use crate::progress::Progress;
use crate::store::{Image, Lookup, Metadata, Store, MANIFEST, ROOTFS};

const CUSTOMIZE_HOOK: &str = include_str!("hooks/customize.sh");

/// Host facts the builder needs (passed in; nothing here reads the environment).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub mirror: String,
    /// `mmdebstrap` on the host.
    pub mmdebstrap: Option<PathBuf>,
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
    let mmdebstrap = opts.mmdebstrap.clone().ok_or(ImageError::MissingTool {
        tool: "mmdebstrap",
        fix: "sudo apt-get install mmdebstrap uidmap",
    })?;
    let npms = spec.npms();
    if !npms.is_empty() && opts.npm.is_none() {
        return Err(ImageError::MissingTool {
            tool: "npm",
            fix: "install Node.js and npm on the host (npm installs the image's npm: packages, including Claude Code)",
        });
    }
    let hooks = stage_hooks(spec, opts)?;
    let build = store.temp_dir(hash)?;
    let rootfs = build.path().join(ROOTFS);
    std::fs::create_dir(&rootfs).map_err(|e| ImageError::io("create", &rootfs, e))?;

    let mut cmd = Command::new(&mmdebstrap);
    cmd.arg(if opts.as_root {
        "--mode=root"
    } else {
        "--mode=unshare"
    })
    .arg("--variant=apt")
    .arg("--format=tar")
    .arg(format!("--include={}", spec.debs().join(",")))
    .arg(format!(
        "--customize-hook={}",
        hooks.path().join("customize").display()
    ))
    .arg(SUITE)
    .arg("-")
    .arg(&opts.mirror)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(npm) = opts.npm.as_ref().and_then(|p| p.parent()) {
        // The hook finds the same npm (and its node) first on PATH.
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", npm.display()));
    }
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
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(step) = line.strip_prefix("I: ") {
                    progress.step(step.trim_start_matches("wrapix: ").trim_end_matches("..."));
                }
                if let Ok(mut l) = log2.lock() {
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
