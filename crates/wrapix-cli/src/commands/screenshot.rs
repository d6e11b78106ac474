//! `wrapix screenshot [-o FILE] [SANDBOX]`: the private display (`display = "xvfb"`) of a
//! running sandbox, saved as PNG from the host. The sandbox is found by its runtime record
//! ([`wrapix_sandbox::forward::runtime`]); the picture is read over the display's socket with
//! the display's cookie (x11rb, no X libraries), and encoded here.
//! `wrapix ps`: the running sandboxes that forward something, with their display and ports.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use wrapix_sandbox::forward::runtime::{running, Record};

use super::Failure;
use crate::context::host_env;

pub fn ps() -> Result<i32, Failure> {
    let records = running(&host_env())?;
    println!(
        "{:<28} {:>8}  {:<8} {:<30} PROJECT",
        "ID", "PID", "DISPLAY", "PORTS"
    );
    let mut listed: Vec<u32> = Vec::new();
    for r in &records {
        listed.push(r.pid);
        println!(
            "{:<28} {:>8}  {:<8} {:<30} {}",
            r.id,
            r.pid,
            r.display.as_deref().unwrap_or("-"),
            if r.ports.is_empty() {
                "-".to_owned()
            } else {
                r.ports.join(", ")
            },
            r.project.display()
        );
    }
    // Sandboxes without a runtime record (nothing forwarded): the user's own `wrapix`
    // processes that run one, found in /proc (no launch pays for a record).
    for (pid, project) in launchers() {
        if listed.contains(&pid) {
            continue;
        }
        let name: String = project
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        println!(
            "{:<28} {:>8}  {:<8} {:<30} {}",
            format!("{name}-{pid}"),
            pid,
            "-",
            "-",
            wrapix_spec::error::escape_controls(&project.display().to_string())
        );
    }
    Ok(0)
}

/// This user's `wrapix` processes on this host (same mount namespace: not the `wrapix`
/// inside a sandbox) that start sandboxes (`wrapix`, `run`, `shell`, `ralph`), with their
/// project folder (`-C`/`--project`, else their working folder).
fn launchers() -> Vec<(u32, PathBuf)> {
    let me = std::process::id();
    let uid = nix::unistd::getuid().as_raw();
    let my_ns = std::fs::read_link("/proc/self/ns/mnt").ok();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = e.path();
        let owned = std::os::unix::fs::MetadataExt::uid(&match std::fs::metadata(&dir) {
            Ok(m) => m,
            Err(_) => continue,
        }) == uid;
        if !owned
            || !std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "wrapix")
            || std::fs::read_link(dir.join("ns/mnt")).ok() != my_ns
        {
            continue;
        }
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let sub = args.get(1).map(String::as_str).unwrap_or("");
        if !(sub.is_empty() || sub.starts_with('-') || ["run", "shell", "ralph"].contains(&sub)) {
            continue;
        }
        let flag = args
            .iter()
            .position(|a| a == "-C" || a == "--project")
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--project=").map(str::to_owned))
            });
        let cwd = std::fs::read_link(dir.join("cwd")).unwrap_or_default();
        let project = match flag {
            Some(p) if Path::new(&p).is_absolute() => PathBuf::from(p),
            Some(p) => cwd.join(p),
            None => cwd,
        };
        out.push((pid, project));
    }
    out.sort();
    out
}

pub fn screenshot(output: Option<&Path>, sandbox: Option<&str>) -> Result<i32, Failure> {
    let records: Vec<Record> = running(&host_env())?
        .into_iter()
        .filter(|r| r.x11_socket.is_some())
        .collect();
    let record = pick(&records, sandbox)?;
    let (Some(socket), Some(auth)) = (&record.x11_socket, &record.xauthority) else {
        return Err(Failure::usage("the sandbox has no private display"));
    };
    let png = wrapix_manager::screenshot::capture(socket, auth).map_err(|e| {
        Failure::failed(format!(
            "cannot capture the display of sandbox {}: {e}",
            record.id
        ))
    })?;
    let out = output
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from(format!("{}.png", record.id)));
    // The current folder is often the project, which the agent writes: a link planted under
    // the file's name is never followed, and the default name is never an existing file.
    let mut open = std::fs::OpenOptions::new();
    open.write(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .mode(0o644);
    if output.is_some() {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    open.open(&out)
        .and_then(|mut f| f.write_all(&png))
        .map_err(|e| {
            Failure::failed(format!("cannot write {}: {e}", out.display())).caused_by(e)
        })?;
    eprintln!(
        "wrapix: saved the display of {} to {}",
        record.id,
        out.display()
    );
    Ok(0)
}

/// The record named by `want` (an id, an id's prefix, or the project folder's name or path),
/// or the only one.
fn pick<'a>(records: &'a [Record], want: Option<&str>) -> Result<&'a Record, Failure> {
    let ids = || {
        records
            .iter()
            .map(|r| format!("{} ({})", r.id, r.project.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let matches: Vec<&Record> = match want {
        None => records.iter().collect(),
        Some(w) => {
            let exact: Vec<&Record> = records.iter().filter(|r| r.id == w).collect();
            if exact.is_empty() {
                records
                    .iter()
                    .filter(|r| {
                        r.id.starts_with(w)
                            || r.project == Path::new(w)
                            || r.project.file_name().is_some_and(|n| n == w)
                    })
                    .collect()
            } else {
                exact
            }
        }
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] if records.is_empty() => Err(Failure::usage(
            "no running sandbox has a private display: start one with display = \"xvfb\" under [forward] (or --forward xvfb)",
        )),
        [] => Err(Failure::usage(format!(
            "no running sandbox with a private display matches {:?}; running: {}",
            want.unwrap_or_default(),
            ids()
        ))),
        _ => Err(Failure::usage(format!(
            "more than one running sandbox has a private display ({}): name one (wrapix screenshot ID)",
            ids()
        ))),
    }
}
