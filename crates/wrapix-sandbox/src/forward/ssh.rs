//! `ssh_agent = true`: the socket of `$SSH_AUTH_SOCK` (every key in it can sign).
//! `ssh_agent = [KEYS]`: a private `ssh-agent` started by wrapix, holding only those keys,
//! killed when the run ends; the user's own agent stays out of reach.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wrapix_spec::{MountMode, SandboxPath};

use super::runtime::RunDir;
use super::{missing, Provided, SANDBOX_SSH_AUTH_SOCK};
use crate::error::SandboxError;
use crate::prepare::Bind;

/// How long a private agent may take to listen.
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// `ssh_agent = true`.
pub fn host_agent(env: &BTreeMap<String, String>, out: &mut Provided) -> Result<(), SandboxError> {
    let sock = env
        .get("SSH_AUTH_SOCK")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .ok_or_else(|| {
            missing(
                "ssh_agent = true forwards the agent of $SSH_AUTH_SOCK, and SSH_AUTH_SOCK is not set",
                "start an agent (eval $(ssh-agent); ssh-add), or list the keys the sandbox may use: ssh_agent = [\"~/.ssh/id_deploy\"]",
            )
        })?;
    let is_socket = std::fs::metadata(&sock)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false);
    if !is_socket {
        return Err(missing(
            format!("SSH_AUTH_SOCK={} is not a socket", sock.display()),
            "start your agent again (eval $(ssh-agent)), or fix SSH_AUTH_SOCK",
        ));
    }
    out.binds.push(Bind {
        source: sock,
        dest: SandboxPath::from_static(SANDBOX_SSH_AUTH_SOCK),
        mode: MountMode::ReadOnly,
    });
    out.env
        .insert("SSH_AUTH_SOCK".into(), SANDBOX_SSH_AUTH_SOCK.into());
    Ok(())
}

/// `ssh_agent = [KEYS]`: `ssh-agent -D -a RUN/ssh-agent.sock`, then `ssh-add KEYS` (asking
/// for a passphrase on the terminal when a key has one). Returns the agent and its socket.
pub fn private_agent(
    env: &BTreeMap<String, String>,
    dir: &RunDir,
    keys: &[PathBuf],
    dry_run: bool,
) -> Result<(Option<Child>, PathBuf), SandboxError> {
    let path = env.get("PATH").map(String::as_str);
    let find = |name: &str| {
        crate::backend::find_program(name, path).ok_or_else(|| {
            missing(
                format!("ssh_agent = [keys] needs {name} on the host, and it is not installed"),
                "sudo apt-get install openssh-client",
            )
        })
    };
    let agent = find("ssh-agent")?;
    let add = find("ssh-add")?;
    let sock = dir.join("ssh-agent.sock");
    if dry_run {
        return Ok((None, sock));
    }
    let mut cmd = Command::new(&agent);
    cmd.args(["-D", "-a"])
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_clear()
        .env("PATH", path.unwrap_or("/usr/bin:/bin"));
    crate::network::tie_to_wrapix(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| SandboxError::io(format!("start {}", agent.display()), e))?;
    let fail = |child: &mut Child, what: String| {
        let _ = child.kill();
        let _ = child.wait();
        missing(what, "check that `ssh-agent -D -a SOCKET` and `ssh-add KEY` work on this host, and that the key files are private keys")
    };
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        if start.elapsed() > AGENT_TIMEOUT || matches!(child.try_wait(), Ok(Some(_))) {
            return Err(fail(
                &mut child,
                "the private ssh-agent for ssh_agent = [keys] did not start".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let added = Command::new(&add)
        .args(["-q", "--"])
        .args(keys)
        .env_clear()
        .env("SSH_AUTH_SOCK", &sock)
        .env("PATH", path.unwrap_or("/usr/bin:/bin"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match added {
        Ok(o) if o.status.success() => Ok((Some(child), sock)),
        Ok(o) => Err(fail(
            &mut child,
            format!(
                "ssh-add could not load {}: {}",
                list(keys),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        )),
        Err(e) => Err(fail(
            &mut child,
            format!("cannot run {}: {e}", add.display()),
        )),
    }
}

fn list(keys: &[PathBuf]) -> String {
    keys.iter()
        .map(|k| k.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
