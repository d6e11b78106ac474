//! What the apple backend does on the Mac itself: the host checks for `wrapix doctor` and
//! loading the image into `container`'s store. Compiled everywhere (so it is type-checked on
//! Linux), run only on macOS: elsewhere the backend refuses before reaching it.

use std::path::Path;
use std::process::Command;

use super::super::Check;
use crate::error::SandboxError;
use crate::prepare::Prepared;

/// macOS 26 or later (`sw_vers -productVersion`).
pub fn version_check() -> Check {
    let out = Command::new("sw_vers").arg("-productVersion").output();
    let version = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major >= 26 && std::env::consts::ARCH == "aarch64" {
        Check::pass("macOS", format!("macOS {version} on Apple silicon"))
    } else {
        Check::fail(
            "macOS",
            format!(
                "macOS {version} on {}: Apple's container needs macOS 26+ on Apple silicon",
                std::env::consts::ARCH
            ),
            "upgrade macOS, or use a Linux machine",
        )
    }
}

/// `container system status`: the CLI's services run.
pub fn system_check(container: &Path) -> Check {
    match Command::new(container).args(["system", "status"]).output() {
        Ok(o) if o.status.success() => Check::pass("container system", "running"),
        Ok(o) => Check::fail(
            "container system",
            String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            "container system start",
        ),
        Err(e) => Check::fail(
            "container system",
            e.to_string(),
            "reinstall Apple's container CLI",
        ),
    }
}

fn cli(container: &Path, args: &[&std::ffi::OsStr]) -> Result<std::process::Output, SandboxError> {
    Command::new(container)
        .args(args)
        .output()
        .map_err(|e| SandboxError::io(format!("run {}", container.display()), e))
}

/// Loads the run's image into `container`'s store as `reference`, unless it is there.
pub fn load_image(
    container: &Path,
    run: &Prepared,
    reference: &str,
    stage: &Path,
) -> Result<(), SandboxError> {
    let rootfs = run_rootfs(run)?;
    let dir = rootfs.parent().unwrap_or(Path::new("/"));
    let hash = dir
        .file_name()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let store = wrapix_image::Store {
        root: dir.parent().unwrap_or(Path::new("/")).to_path_buf(),
    };
    let image = match store.lookup(&hash) {
        wrapix_image::store::Lookup::Ready(i) => i,
        _ => {
            return Err(SandboxError::Missing {
                what: format!("the image {hash} is not in the cache"),
                fix: "wrapix image build".into(),
            })
        }
    };
    load(container, &image, reference, stage)
}

/// Loads a cached image into `container`'s store as `reference`, unless it is there: its OCI
/// archive (written into `scratch`, removed after), `container image load`, then a tag with
/// the name the caller runs. Also used by `wrapix builder`.
pub fn load(
    container: &Path,
    image: &wrapix_image::Image,
    reference: &str,
    scratch: &Path,
) -> Result<(), SandboxError> {
    let os = |s: &str| std::ffi::OsString::from(s);
    if cli(container, &[&os("image"), &os("inspect"), &os(reference)])?
        .status
        .success()
    {
        return Ok(());
    }
    let archive = scratch.join("image.tar");
    wrapix_image::oci::export(image, &archive).map_err(|e| SandboxError::Missing {
        what: format!("cannot export the image for container: {e}"),
        fix: "wrapix image build".into(),
    })?;
    let out = cli(
        container,
        &[
            &os("image"),
            &os("load"),
            &os("--input"),
            archive.as_os_str(),
        ],
    )?;
    let _ = std::fs::remove_file(&archive);
    if !out.status.success() {
        return Err(SandboxError::Missing {
            what: format!(
                "container image load failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            fix: "container system start, then try again".into(),
        });
    }
    let name = wrapix_image::oci::reference(image);
    let out = cli(
        container,
        &[&os("image"), &os("tag"), &os(&name), &os(reference)],
    )?;
    if !out.status.success() {
        return Err(SandboxError::Missing {
            what: format!(
                "container image tag {name} {reference} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            fix: "report it with the output of `container image list`".into(),
        });
    }
    Ok(())
}

fn run_rootfs(run: &Prepared) -> Result<&Path, SandboxError> {
    run.root
        .image
        .as_deref()
        .ok_or_else(|| SandboxError::Missing {
            what: "the apple backend runs from an image".into(),
            fix: "set profile = \"base\"".into(),
        })
}
