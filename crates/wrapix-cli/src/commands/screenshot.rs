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
    for r in records {
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
    Ok(0)
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
