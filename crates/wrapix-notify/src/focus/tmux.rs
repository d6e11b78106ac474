//! tmux: the session's pane counts as watched when it is the active pane of the active window
//! of a session with an attached client. Asked with `tmux -S SOCKET display-message` (argv, no
//! shell), on the server the launcher ran in (`$TMUX`, `$TMUX_PANE`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Focus, TmuxRef, QUERY_TIMEOUT};

/// The pane the launcher runs in, from `$TMUX` (`SOCKET,PID,SESSION`) and `$TMUX_PANE`.
pub fn detect(env: &BTreeMap<String, String>) -> Option<TmuxRef> {
    let socket = env.get("TMUX")?.split(',').next()?.to_owned();
    let pane = env.get("TMUX_PANE")?.clone();
    let valid =
        pane.len() > 1 && pane.starts_with('%') && pane[1..].bytes().all(|b| b.is_ascii_digit());
    (valid && Path::new(&socket).is_absolute()).then(|| TmuxRef {
        socket: PathBuf::from(socket),
        pane,
    })
}

/// `session:window.pane` of the pane (e.g. `0:1.0`): the session id users recognise.
pub fn pane_name(t: &TmuxRef) -> Option<String> {
    let out = display(t, "#{session_name}:#{window_index}.#{pane_index}").ok()?;
    (!out.is_empty()).then_some(out)
}

pub fn pane_focus(t: &TmuxRef) -> Focus {
    let out = match display(t, "#{pane_active} #{window_active} #{session_attached}") {
        Ok(o) => o,
        Err(e) => return Focus::Unknown(format!("tmux: {e}")),
    };
    let f: Vec<&str> = out.split(' ').collect();
    match f.as_slice() {
        ["1", "1", attached] if attached.parse::<u32>().unwrap_or(0) > 0 => Focus::Focused,
        [pane, window, attached] => Focus::NotFocused(format!(
            "tmux pane {}: pane active {pane}, window active {window}, clients attached {attached}",
            t.pane
        )),
        _ => Focus::Unknown(format!("tmux answered {out:?}")),
    }
}

fn display(t: &TmuxRef, format: &str) -> Result<String, String> {
    let mut child = Command::new("tmux")
        .arg("-S")
        .arg(&t.socket)
        .args(["display-message", "-p", "-t", &t.pane, format])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run tmux: {e}"))?;
    let deadline = Instant::now() + QUERY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "tmux did not answer within {} ms",
                    QUERY_TIMEOUT.as_millis()
                ));
            }
            Err(e) => return Err(format!("waiting for tmux: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("reading tmux's answer: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tmux failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_from_env() {
        let env: BTreeMap<String, String> = [
            (
                "TMUX".to_owned(),
                "/tmp/tmux-1000/default,1234,0".to_owned(),
            ),
            ("TMUX_PANE".to_owned(), "%3".to_owned()),
        ]
        .into();
        assert_eq!(
            detect(&env),
            Some(TmuxRef {
                socket: "/tmp/tmux-1000/default".into(),
                pane: "%3".into()
            })
        );
        let bad: BTreeMap<String, String> = [
            ("TMUX".to_owned(), "/tmp/s,1,0".to_owned()),
            ("TMUX_PANE".to_owned(), "%3;rm".to_owned()),
        ]
        .into();
        assert_eq!(detect(&bad), None);
    }
}
