//! sway and i3: the i3 IPC protocol on `$SWAYSOCK`/`$I3SOCK`. A message is `i3-ipc`, a 32-bit
//! payload length and a 32-bit type (native byte order), then the payload; `GET_TREE` (4)
//! answers the layout tree, in which the focused window has `"focused": true`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::{with_timeout, QUERY_TIMEOUT};

const MAGIC: &[u8; 6] = b"i3-ipc";
const GET_TREE: u32 = 4;
const MAX_REPLY: u32 = 64 << 20;

/// The id of the focused node, `None` when nothing has the focus.
pub fn focused_window(socket: &Path) -> Result<Option<i64>, String> {
    let socket = socket.to_owned();
    with_timeout("sway", move || {
        let err = |e: std::io::Error| format!("i3 IPC socket {}: {e}", socket.display());
        let mut s = UnixStream::connect(&socket).map_err(err)?;
        s.set_read_timeout(Some(QUERY_TIMEOUT)).map_err(err)?;
        s.write_all(&message(GET_TREE, b"")).map_err(err)?;
        let mut header = [0u8; 14];
        s.read_exact(&mut header).map_err(err)?;
        if &header[..6] != MAGIC {
            return Err("i3 IPC: bad reply header".into());
        }
        let len = u32::from_ne_bytes([header[6], header[7], header[8], header[9]]);
        if len > MAX_REPLY {
            return Err(format!("i3 IPC: reply of {len} bytes is too large"));
        }
        let mut body = vec![0u8; len as usize];
        s.read_exact(&mut body).map_err(err)?;
        let tree: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("i3 IPC: bad JSON: {e}"))?;
        Ok(find_focused(&tree))
    })
}

fn message(kind: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = MAGIC.to_vec();
    m.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(payload);
    m
}

/// Depth-first search for the node with `"focused": true` (iterative: the tree is untrusted).
fn find_focused(tree: &serde_json::Value) -> Option<i64> {
    let mut stack = vec![tree];
    while let Some(node) = stack.pop() {
        if node.get("focused").and_then(|f| f.as_bool()) == Some(true) {
            return node.get("id").and_then(|i| i.as_i64());
        }
        for key in ["nodes", "floating_nodes"] {
            if let Some(children) = node.get(key).and_then(|n| n.as_array()) {
                stack.extend(children.iter());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn asks_the_socket_for_the_tree() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = t.path().join("sway.sock");
        let l = UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let tree = serde_json::json!({
            "id": 1, "focused": false,
            "nodes": [{"id": 2, "focused": false, "nodes": [
                {"id": 7, "focused": false, "nodes": []},
                {"id": 9, "focused": false, "nodes": [], "floating_nodes": [
                    {"id": 11, "focused": true, "nodes": []}
                ]}
            ]}]
        });
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap_or_else(|e| panic!("{e}"));
            let mut header = [0u8; 14];
            s.read_exact(&mut header).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&header[..], &message(GET_TREE, b"")[..]);
            let body = serde_json::to_vec(&tree).unwrap_or_default();
            let mut reply = MAGIC.to_vec();
            reply.extend_from_slice(&(body.len() as u32).to_ne_bytes());
            reply.extend_from_slice(&GET_TREE.to_ne_bytes());
            reply.extend_from_slice(&body);
            s.write_all(&reply).unwrap_or_else(|e| panic!("{e}"));
        });
        assert_eq!(focused_window(&path), Ok(Some(11)));
        server.join().unwrap_or_else(|_| panic!("server"));
    }
}
