//! Inside the sandbox: a loopback TCP listener (`127.0.0.1:3128`) that relays each connection
//! to the host-side proxy's Unix socket (mounted at [`super::SANDBOX_SOCKET`]). Run by the
//! sandbox's init (PID 1) before the command, in plain threads: it decides nothing, the proxy
//! on the host does.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Binds the listener (so that it is ready before the command starts) and relays in the
/// background for the sandbox's lifetime.
pub fn start(socket: PathBuf) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", super::PORT))?;
    std::thread::Builder::new()
        .name("egress-relay".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let socket = socket.clone();
                let spawned = std::thread::Builder::new()
                    .name("egress-conn".into())
                    .spawn(move || pipe(conn, &socket));
                if let Err(e) = spawned {
                    eprintln!("wrapix: egress relay: {e}");
                }
            }
        })?;
    Ok(())
}

fn pipe(tcp: TcpStream, socket: &Path) {
    let Ok(unix) = UnixStream::connect(socket) else {
        return;
    };
    let (Ok(mut tcp_r), Ok(mut unix_w)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = pump(&mut tcp_r, &mut unix_w);
        let _ = unix_w.shutdown(Shutdown::Write);
    });
    let (mut unix_r, mut tcp_w) = (unix, tcp);
    let _ = pump(&mut unix_r, &mut tcp_w);
    let _ = tcp_w.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// Bytes a relay moves per system call. `io::copy`'s 8 KiB made the relay the bottleneck
/// of a download (bench/egress.sh).
pub const CHUNK: usize = 256 * 1024;

/// Copies until end of file, in [`CHUNK`]s.
fn pump(r: &mut impl io::Read, w: &mut impl io::Write) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => w.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
