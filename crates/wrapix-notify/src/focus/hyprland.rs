//! Hyprland: `j/activewindow` on `$XDG_RUNTIME_DIR/hypr/$HYPRLAND_INSTANCE_SIGNATURE/.socket.sock`
//! (older versions: `/tmp/hypr/…`) answers JSON with the window's `address` (`{}` when none).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::{with_timeout, QUERY_TIMEOUT};

pub fn socket_path(runtime_dir: Option<&str>, signature: &str) -> PathBuf {
    let name = Path::new(signature)
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    let current = runtime_dir.map(|r| Path::new(r).join("hypr").join(&name).join(".socket.sock"));
    match current {
        Some(p) if p.parent().and_then(Path::parent).is_some_and(Path::is_dir) => p,
        _ => Path::new("/tmp/hypr").join(&name).join(".socket.sock"),
    }
}

/// The address of the active window, `None` when no window is active.
pub fn active_window(socket: &Path) -> Result<Option<String>, String> {
    let socket = socket.to_owned();
    with_timeout("hyprland", move || {
        let err = |e: std::io::Error| format!("hyprland socket {}: {e}", socket.display());
        let mut s = UnixStream::connect(&socket).map_err(err)?;
        s.set_read_timeout(Some(QUERY_TIMEOUT)).map_err(err)?;
        s.write_all(b"j/activewindow").map_err(err)?;
        let mut answer = String::new();
        s.take(1 << 20).read_to_string(&mut answer).map_err(err)?;
        parse(&answer)
    })
}

fn parse(answer: &str) -> Result<Option<String>, String> {
    let v: serde_json::Value = serde_json::from_str(answer)
        .map_err(|e| format!("hyprland answered with bad JSON: {e}"))?;
    Ok(v.get("address")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn asks_the_socket() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = t.path().join("hypr/sig");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = socket_path(t.path().to_str(), "sig");
        assert_eq!(path, dir.join(".socket.sock"));
        let l = UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let server = std::thread::spawn(move || {
            for answer in [r#"{"address":"0x55d1c0ffee","class":"foot"}"#, "{}"] {
                let (mut s, _) = l.accept().unwrap_or_else(|e| panic!("{e}"));
                let mut req = [0u8; 14];
                s.read_exact(&mut req).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(&req, b"j/activewindow");
                s.write_all(answer.as_bytes())
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        });
        assert_eq!(active_window(&path), Ok(Some("0x55d1c0ffee".into())));
        assert_eq!(active_window(&path), Ok(None));
        server.join().unwrap_or_else(|_| panic!("server"));
        assert!(socket_path(None, "../../etc").starts_with("/tmp/hypr"));
    }
}
