//! Deploy keys: one SSH key per project, so an agent can `git push` to one repository and
//! nothing else. Keys live in `~/.ssh/deploy_keys/NAME` on the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::SandboxError;

/// Host keys of GitHub, GitLab and Codeberg, used with `StrictHostKeyChecking=yes`.
pub const KNOWN_HOSTS: &str = include_str!("../assets/known_hosts");

/// Result of [`create`].
#[derive(Debug)]
pub struct CreatedKey {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub public_text: String,
}

/// Generates an ed25519 key `~/.ssh/deploy_keys/NAME` (no passphrase) with `ssh-keygen`.
/// Refuses to overwrite an existing key.
pub fn create(name: &str, host_home: &Path) -> Result<CreatedKey, SandboxError> {
    wrapix_spec::types::check_key_name(name).map_err(|e| SandboxError::Unavailable {
        backend: "deploy-key",
        problem: e.to_string(),
        fix: e.fix().into(),
    })?;
    let dir = host_home.join(".ssh/deploy_keys");
    std::fs::create_dir_all(&dir)
        .map_err(|e| SandboxError::io(format!("create {}", dir.display()), e))?;
    set_mode(&host_home.join(".ssh"), 0o700)?;
    set_mode(&dir, 0o700)?;
    let private_key = dir.join(name);
    let public_key = dir.join(format!("{name}.pub"));
    if private_key.exists() || public_key.exists() {
        return Err(SandboxError::Unavailable {
            backend: "deploy-key",
            problem: format!("{} already exists", private_key.display()),
            fix: "choose another name, or delete the old key first".into(),
        });
    }
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("wrapix deploy key {name}"))
        .arg("-f")
        .arg(&private_key)
        .output()
        .map_err(|e| SandboxError::io("run ssh-keygen (install openssh-client)", e))?;
    if !out.status.success() {
        return Err(SandboxError::Unavailable {
            backend: "deploy-key",
            problem: format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            fix: "check that openssh-client is installed and ~/.ssh is writable".into(),
        });
    }
    let public_text = std::fs::read_to_string(&public_key)
        .map_err(|e| SandboxError::io(format!("read {}", public_key.display()), e))?;
    Ok(CreatedKey {
        private_key,
        public_key,
        public_text,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| SandboxError::io(format!("chmod {}", path.display()), e))
}
