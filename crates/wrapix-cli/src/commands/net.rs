//! `wrapix net log [--follow]`: the egress proxy's decisions, one JSON line each, from
//! `$XDG_STATE_HOME/wrapix/egress.log` (written by the host side only).

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::Failure;
use crate::context::{host_env, host_user};

/// How often `--follow` looks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

pub fn log(follow: bool) -> Result<i32, Failure> {
    let env = host_env();
    let user = host_user(&env);
    let path = wrapix_sandbox::egress::log::path(&user.home, &env);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => {
            eprintln!(
                "wrapix: no egress decisions yet ({} does not exist; runs with a network allowlist write it)",
                path.display()
            );
            return Ok(0);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => loop {
            std::thread::sleep(FOLLOW_EVERY);
            if let Ok(f) = std::fs::File::open(&path) {
                break f;
            }
        },
        Err(e) => {
            return Err(Failure::new(
                1,
                format!("cannot read {}: {e}", path.display()),
            ))
        }
    };
    let mut out = std::io::stdout().lock();
    let mut pending = Vec::new();
    loop {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(|e| Failure::new(1, format!("cannot read {}: {e}", path.display())))?;
        pending.extend_from_slice(&buf);
        // Whole lines only: a line being appended is printed once it is complete.
        let complete = pending
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        for line in pending[..complete].lines() {
            let line = line.unwrap_or_default();
            // The log is wrapix's own, but hosts in it were named by the sandbox.
            if writeln!(out, "{}", wrapix_spec::error::escape_controls(&line)).is_err() {
                return Ok(0);
            }
        }
        pending.drain(..complete);
        if !follow {
            return Ok(0);
        }
        let _ = out.flush();
        std::thread::sleep(FOLLOW_EVERY);
        // A log that was replaced (rotated by hand): start at its beginning.
        let pos = file.stream_position().unwrap_or(0);
        if std::fs::metadata(&path)
            .map(|m| m.len() < pos)
            .unwrap_or(false)
        {
            if let Ok(f) = std::fs::File::open(&path) {
                file = f;
                file.seek(SeekFrom::Start(0)).ok();
                pending.clear();
            }
        }
    }
}
