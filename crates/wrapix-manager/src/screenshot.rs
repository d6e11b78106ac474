//! Screenshots of a session's private display (`display = "xvfb"` of `wrapix run`): read
//! over the display's socket with its cookie (x11rb, no X libraries), encoded as PNG here.
//! `wrapix screenshot` uses the same capture. The manager keeps the newest per session.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder};

use crate::service::{Manager, Shot};
use crate::ApiError;

/// Xauthority files are small.
/// How long one capture may take (the display is the agent's: it can stall it).
const CAPTURE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
const XAUTH_LIMIT: u64 = 64 * 1024;

/// The session's newest screenshot, taken now unless one is younger than `fresh`.
pub fn latest(m: &Manager, key: &str, fresh: Duration) -> Result<Shot, ApiError> {
    let s = m.find(key)?;
    if let Some(shot) = m.shots.lock().ok().and_then(|c| c.get(&s.id).cloned()) {
        if shot.at.elapsed() < fresh || !s.status.is_live() {
            return Ok(shot);
        }
    }
    if !s.status.is_live() {
        return Err(ApiError::not_found(format!(
            "session {} is {}: it has no display",
            s.name,
            s.status.as_str()
        )));
    }
    let pid = m
        .pid(&s.id)
        .ok_or_else(|| ApiError::not_found(format!("session {} has no running sandbox", s.name)))?;
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let records = wrapix_sandbox::forward::runtime::running(&env)
        .map_err(|e| ApiError::internal(format!("cannot list the running sandboxes: {e}")))?;
    let rec = records.into_iter().find(|r| r.pid == pid).ok_or_else(|| {
        ApiError::not_found(format!(
            "session {} has no display yet (the sandbox is starting)",
            s.name
        ))
    })?;
    let (Some(socket), Some(auth)) = (rec.x11_socket, rec.xauthority) else {
        return Err(ApiError::not_found(format!(
            "session {} has no private display",
            s.name
        )));
    };
    let png = capture(&socket, &auth).map_err(|e| {
        ApiError::not_found(format!("cannot capture the display of {}: {e}", s.name))
    })?;
    let mut crc = flate2::Crc::new();
    crc.update(&png);
    let shot = Shot {
        etag: format!("{:08x}{:x}", crc.sum(), png.len()),
        png: Arc::new(png),
        at: Instant::now(),
    };
    if let Ok(mut c) = m.shots.lock() {
        c.insert(s.id.clone(), shot.clone());
    }
    Ok(shot)
}

/// The root window of the display at `socket`, as PNG.
pub fn capture(socket: &Path, xauthority: &Path) -> Result<Vec<u8>, String> {
    let auth = wrapix_hostfs::Dir::open(xauthority.parent().unwrap_or(Path::new("/")))
        .and_then(|d| {
            d.read(
                Path::new(xauthority.file_name().unwrap_or_default()),
                XAUTH_LIMIT,
            )
        })
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let entry = wrapix_sandbox::forward::xauth::parse(&auth)
        .and_then(|e| e.into_iter().next())
        .ok_or("the display's Xauthority file has no cookie")?;
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| format!("connect to {}: {e}", socket.display()))?;
    // The X server is the agent's to drive: a client holding a server grab would make the
    // capture wait forever. A watchdog shuts the connection down after CAPTURE_DEADLINE, which
    // wakes x11rb's wait with an error.
    let watchdog = stream
        .try_clone()
        .map_err(|e| format!("connect to {}: {e}", socket.display()))?;
    let (_done, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            done_rx.recv_timeout(CAPTURE_DEADLINE)
        {
            let _ = watchdog.shutdown(std::net::Shutdown::Both);
        }
    });
    let (stream, _) = x11rb::rust_connection::DefaultStream::from_unix_stream(stream)
        .map_err(|e| e.to_string())?;
    let conn = x11rb::rust_connection::RustConnection::connect_to_stream_with_auth_info(
        stream, 0, entry.name, entry.data,
    )
    .map_err(|e| e.to_string())?;
    let screen = conn
        .setup()
        .roots
        .first()
        .ok_or("the display has no screen")?;
    let (w, h) = (screen.width_in_pixels, screen.height_in_pixels);
    let image = conn
        .get_image(ImageFormat::Z_PIXMAP, screen.root, 0, 0, w, h, !0)
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?;
    let bpp = conn
        .setup()
        .pixmap_formats
        .iter()
        .find(|f| f.depth == image.depth)
        .map(|f| f.bits_per_pixel);
    if bpp != Some(32) || conn.setup().image_byte_order != ImageOrder::LSB_FIRST {
        return Err(format!(
            "unsupported pixel format (depth {}, {bpp:?} bits per pixel)",
            image.depth
        ));
    }
    // 32 bits per pixel, least significant byte first: B, G, R, unused.
    let rgb: Vec<u8> = image
        .data
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    Ok(png(u32::from(w), u32::from(h), &rgb))
}

/// A PNG of 8-bit RGB pixels: signature, IHDR, one zlib IDAT (filter 0 per row), IEND.
pub fn png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    use flate2::write::ZlibEncoder;
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    for row in rgb.chunks(width as usize * 3) {
        let _ = z.write_all(&[0]);
        let _ = z.write_all(row);
    }
    let idat = z.finish().unwrap_or_default();
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_is_well_formed() {
        let p = png(2, 1, &[255, 0, 0, 0, 255, 0]);
        assert!(p.starts_with(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x02\0\0\0\x01\x08\x02"));
        assert!(p.ends_with(b"IEND\xae\x42\x60\x82"));
    }
}
