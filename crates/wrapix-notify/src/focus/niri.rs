//! niri: its IPC socket (`$NIRI_SOCKET`) takes one JSON request per line; `"FocusedWindow"`
//! answers `{"Ok":{"FocusedWindow":{"id":12,…}}}` or `{"Ok":{"FocusedWindow":null}}`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::{with_timeout, QUERY_TIMEOUT};

/// The id of the focused window, `None` when no window has the focus.
pub fn focused_window(socket: &Path) -> Result<Option<u64>, String> {
    let socket: PathBuf = socket.to_owned();
    with_timeout("niri", move || {
        let err = |e: std::io::Error| format!("niri socket {}: {e}", socket.display());
        let mut s = UnixStream::connect(&socket).map_err(err)?;
        s.set_read_timeout(Some(QUERY_TIMEOUT)).map_err(err)?;
        s.write_all(b"\"FocusedWindow\"\n").map_err(err)?;
        let mut line = String::new();
        BufReader::new(std::io::Read::take(s, 1 << 20))
            .read_line(&mut line)
            .map_err(err)?;
        parse(&line)
    })
}

fn parse(line: &str) -> Result<Option<u64>, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("niri answered with bad JSON: {e}"))?;
    let Some(fw) = v.get("Ok").and_then(|ok| ok.get("FocusedWindow")) else {
        return Err(format!("niri answered: {}", line.trim()));
    };
    if fw.is_null() {
        return Ok(None);
    }
    fw.get("id")
        .and_then(|id| id.as_u64())
        .map(Some)
        .ok_or_else(|| "niri: the focused window has no id".into())
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn parses_answers() {
        assert_eq!(
            parse(r#"{"Ok":{"FocusedWindow":{"id":12,"title":"t","app_id":"foot"}}}"#),
            Ok(Some(12))
        );
        assert_eq!(parse(r#"{"Ok":{"FocusedWindow":null}}"#), Ok(None));
        assert!(parse(r#"{"Err":"nope"}"#).is_err());
    }

    /// A stand-in niri that speaks the protocol on a real socket.
    #[test]
    fn asks_the_socket() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = t.path().join("niri.sock");
        let l = UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap_or_else(|e| panic!("{e}"));
            let mut req = String::new();
            let mut r = BufReader::new(&s);
            r.read_line(&mut req).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(req, "\"FocusedWindow\"\n");
            (&s).write_all(b"{\"Ok\":{\"FocusedWindow\":{\"id\":42}}}\n")
                .unwrap_or_else(|e| panic!("{e}"));
        });
        assert_eq!(focused_window(&path), Ok(Some(42)));
        server.join().unwrap_or_else(|_| panic!("server"));
    }
}
