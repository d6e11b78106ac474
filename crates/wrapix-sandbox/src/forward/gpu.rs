//! `gpu = true`: the GPU's device nodes, bound as devices: the DRM render nodes
//! (`/dev/dri/renderD*`, not the `card*` nodes, which can drive the displays) and NVIDIA's
//! nodes (`/dev/nvidia[0-9]*`, `nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools`,
//! `nvidia-modeset`) where present. Which nodes is a pure function of a listing of `/dev`
//! ([`devices`]), so the plan is tested without a GPU.

use std::path::{Path, PathBuf};

use super::{missing, Provided};
use crate::error::SandboxError;

/// The NVIDIA control nodes besides the per-GPU `nvidiaN`.
const NVIDIA_NODES: &[&str] = &[
    "nvidiactl",
    "nvidia-uvm",
    "nvidia-uvm-tools",
    "nvidia-modeset",
];

/// The device nodes to bind, from the names in `/dev/dri` and in `/dev`, sorted.
pub fn devices(dri: &[String], dev: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = dri
        .iter()
        .filter(|n| {
            n.strip_prefix("renderD")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|n| Path::new("/dev/dri").join(n))
        .collect();
    out.extend(
        dev.iter()
            .filter(|n| {
                NVIDIA_NODES.contains(&n.as_str())
                    || n.strip_prefix("nvidia")
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|n| Path::new("/dev").join(n)),
    );
    out.sort();
    out
}

/// The names in a folder (empty when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The nodes of this host (`/dev`).
pub fn host_devices() -> Vec<PathBuf> {
    devices(&names(Path::new("/dev/dri")), &names(Path::new("/dev")))
}

/// `gpu = true` with the nodes `found`: none is an error naming the fix; so is a node this
/// user cannot open (the sandbox could not either).
pub fn provide(found: Vec<PathBuf>, out: &mut Provided) -> Result<(), SandboxError> {
    if found.is_empty() {
        return Err(missing(
            "gpu = true binds the GPU's device nodes, and this host has none (no /dev/dri/renderD*, no /dev/nvidia*)",
            "install the GPU's kernel driver (a render node appears as /dev/dri/renderD128), or remove gpu",
        ));
    }
    for d in &found {
        if rustix::fs::access(
            d,
            rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
        )
        .is_err()
        {
            return Err(missing(
                format!("gpu = true: {} cannot be opened by this user", d.display()),
                "add yourself to the device's group (ls -l it; usually: sudo usermod -aG render,video $USER, then log in again)",
            ));
        }
    }
    out.devices.extend(found);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn render_and_nvidia_nodes_only() {
        let got = devices(
            &s(&["card0", "renderD128", "renderD129", "by-path", "renderDx"]),
            &s(&[
                "null",
                "nvidia0",
                "nvidia1",
                "nvidiactl",
                "nvidia-uvm",
                "nvidia-caps",
                "nvidiafoo",
                "dri",
                "fb0",
            ]),
        );
        let got: Vec<String> = got.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            got,
            [
                "/dev/dri/renderD128",
                "/dev/dri/renderD129",
                "/dev/nvidia-uvm",
                "/dev/nvidia0",
                "/dev/nvidia1",
                "/dev/nvidiactl"
            ]
        );
    }

    #[test]
    fn no_gpu_is_an_error_naming_the_fix() {
        let e = provide(Vec::new(), &mut Provided::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("has none"), "{e}");
        assert!(e.contains("renderD128"), "{e}");
    }
}
