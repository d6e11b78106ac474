//! `wrapix screenshot [-o FILE] [SANDBOX]`: the private display (`display = "xvfb"`) of a
//! running sandbox, saved as PNG from the host. The sandbox is found by its runtime record
//! ([`wrapix_sandbox::forward::runtime`]); the picture is read over the display's socket with
//! the display's cookie (x11rb, no X libraries), and encoded here.
//! `wrapix ps`: the running sandboxes that forward something, with their display and ports.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use wrapix_sandbox::forward::runtime::{running, Record};
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder};

use super::Failure;
use crate::context::host_env;

/// Xauthority files are small.
const XAUTH_LIMIT: u64 = 64 * 1024;

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
    let png = capture(socket, auth).map_err(|e| {
        Failure::failed(format!(
            "cannot capture the display of sandbox {}: {e}",
            record.id
        ))
    })?;
    let out = output
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from(format!("{}.png", record.id)));
    std::fs::File::create(&out)
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

/// The root window of the display at `socket`, as PNG.
fn capture(socket: &Path, xauthority: &Path) -> Result<Vec<u8>, String> {
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
fn png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
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
