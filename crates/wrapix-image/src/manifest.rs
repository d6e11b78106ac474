//! The manifest of an image: every entry of the root filesystem as the builder produced it
//! (type, original mode and owner, size, mtime, SHA-256 of file contents). It is written while
//! the builder's tar stream is unpacked, so hashing costs no second pass over the files. It
//! serves two purposes: verifying a cached image (`wrapix image build` re-checks every file)
//! and exporting a faithful OCI layer (owners as built, not as unpacked).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ImageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
}

/// One entry, as a JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the root, without a leading `./` (the root itself is not listed).
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symlink target, or the path a hard link points to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The result of unpacking: how many entries and bytes, and the manifest's own digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    pub bytes: u64,
    pub manifest_sha256: String,
}

/// A writer that passes bytes on while hashing and counting them (also used by the OCI export).
pub(crate) struct HashWriter<W> {
    pub(crate) inner: W,
    pub(crate) hasher: Sha256,
    pub(crate) n: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tar path → a safe relative path (no `..`, no absolute parts); `None` for the root.
fn clean(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The longest path an entry may have (Linux's PATH_MAX; macOS's is 1 KiB): no entry longer
/// could be made under `dest` anyway, and each of its folders is looked up among the links.
const MAX_PATH_BYTES: usize = 4096;

/// More entries than any image has (a Debian root with Chromium has ~60 000): a stream past
/// this is refused rather than filling the disk with names.
const MAX_ENTRIES: u64 = 2_000_000;

/// The most the paths of a stream may add up to (a Debian root with Chromium: ~5 MiB).
const MAX_NAME_BYTES: u64 = 256 << 20;

/// The most the tar reader may read to find the next entry: its header blocks, the padding
/// before them, and the GNU long name, long link name and pax records it keeps in memory for
/// it (a real name is at most 4 KiB, pax records a few KiB). Without a bound, a stream whose
/// long-name header claims gigabytes would be buffered whole.
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// The stream, with a bound on what one step of the tar reader may read (`left`: `None`
/// while an entry's own data is read, which goes to disk, not memory).
struct Metered<R> {
    inner: R,
    left: std::rc::Rc<std::cell::Cell<Option<u64>>>,
    /// Set when the bound stopped a read (the tar reader's error then says why not).
    over: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(left) = self.left.get() else {
            return self.inner.read(buf);
        };
        if left == 0 && !buf.is_empty() {
            self.over.set(true);
            return Err(std::io::Error::other(format!(
                "an entry's headers are over {MAX_HEADER_BYTES} bytes"
            )));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left.set(Some(left - n as u64));
        Ok(n)
    }
}

/// Each folder above `rel` in `dest` is a real folder (created if missing), never a link.
fn real_parents(dest: &Path, rel: &Path) -> Result<(), String> {
    let mut p = dest.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for c in parent.components() {
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "{} is below {}, which is not a folder",
                    rel.display(),
                    p.display()
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&p).map_err(|e| format!("create {}: {e}", p.display()))?;
            }
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    Ok(())
}

/// Unpacks a tar stream into `dest` (which must exist and be empty) and writes the manifest
/// to `manifest`. Device nodes and `/dev` contents are skipped (every backend provides its
/// own `/dev`). When not running as root, set-user/group-ID bits are dropped from the
/// unpacked files (the manifest keeps the original mode for export).
///
/// The stream is input from outside (a build container's output on macOS): nothing it says is
/// followed out of `dest`. Paths with `..` or a root are skipped; an entry below a symlink the
/// stream made, or a second entry for a path (but a folder named again), is an error, so no
/// file is created, written or chmod-ed through a link. `dest` starts empty and only this
/// function writes into it, so the stream's own links are the only ones there.
pub fn unpack(
    stream: impl Read,
    dest: &Path,
    manifest: &Path,
    as_root: bool,
) -> Result<Unpacked, ImageError> {
    unpack_within(stream, dest, manifest, as_root, MAX_NAME_BYTES)
}

/// [`unpack`] with the bound on all paths together given (tests lower it).
fn unpack_within(
    stream: impl Read,
    dest: &Path,
    manifest: &Path,
    as_root: bool,
    max_name_bytes: u64,
) -> Result<Unpacked, ImageError> {
    let out = File::create(manifest).map_err(|e| ImageError::io("create", manifest, e))?;
    let mut out = HashWriter {
        inner: BufWriter::new(out),
        hasher: Sha256::new(),
        n: 0,
    };
    let left = std::rc::Rc::new(std::cell::Cell::new(None));
    let over = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut archive = tar::Archive::new(Metered {
        inner: stream,
        left: left.clone(),
        over: over.clone(),
    });
    let tar_err = |e: std::io::Error| ImageError::io("read the builder's tar stream into", dest, e);
    let mut dirs: BTreeMap<PathBuf, u32> = BTreeMap::new();
    let mut links: HashSet<PathBuf> = HashSet::new();
    let mut seen: HashMap<PathBuf, bool> = HashMap::new();
    let mut files: HashSet<PathBuf> = HashSet::new();
    let malformed = |what: String| {
        ImageError::Build {
        message: format!("the builder's tar stream is malformed: {what}; nothing was cached"),
        fix: "build again; if it repeats, the build container's image is broken or hostile (WRAPIX_BUILD_IMAGE)".into(),
    }
    };
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut names = 0u64;
    // An entry the loop skips: its data read here, unbounded, as a file's would be (the tar
    // reader would otherwise skip it within the bounded step to the next entry).
    let skip = |entry: &mut tar::Entry<'_, _>| {
        std::io::copy(entry, &mut std::io::sink())
            .map(drop)
            .map_err(tar_err)
    };
    let mut entries = archive.entries().map_err(tar_err)?;
    loop {
        left.set(Some(MAX_HEADER_BYTES));
        let next = entries.next();
        left.set(None);
        // Whatever the tar reader made of it (an error, or an end: a cut-off stream), a read
        // the bound stopped is a refusal.
        if over.get() {
            return Err(malformed(format!(
                "an entry's headers (long name, long link name, pax records) are over {} KiB",
                MAX_HEADER_BYTES / 1024
            )));
        }
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(tar_err)?;
        // The tar reader makes up a GNU sparse file's holes as zeros when it is read, so
        // `skip` could read exabytes for a few blocks; mmdebstrap's pax output has none.
        if entry.header().entry_type().is_gnu_sparse() {
            return Err(malformed(
                "it has a GNU sparse file, which wrapix does not unpack".into(),
            ));
        }
        let raw_path = entry.path().map_err(tar_err)?.into_owned();
        let Some(rel) = clean(&raw_path) else {
            skip(&mut entry)?;
            continue;
        };
        if rel.as_os_str().len() > MAX_PATH_BYTES {
            return Err(malformed(format!("a path is over {MAX_PATH_BYTES} bytes")));
        }
        if count >= MAX_ENTRIES {
            return Err(malformed(format!("it has more than {MAX_ENTRIES} entries")));
        }
        // The manifest holds paths as text: one that is not UTF-8 would be recorded as another.
        if rel.to_str().is_none() {
            return Err(malformed(format!("{} is not UTF-8", rel.display())));
        }
        let h = entry.header();
        let mode = h.mode().map_err(tar_err)?;
        let uid = h.uid().map_err(tar_err)?;
        let gid = h.gid().map_err(tar_err)?;
        let mtime = h.mtime().map_err(tar_err)?;
        let ty = h.entry_type();
        let in_dev = rel.starts_with("dev") && rel != Path::new("dev");
        if in_dev || ty.is_character_special() || ty.is_block_special() || ty.is_fifo() {
            skip(&mut entry)?;
            continue;
        }
        // Extended headers are consumed by the tar reader; anything else is not a file. Nothing
        // is made for it, so nothing of it is kept either (its name could be 1 MiB).
        let made = ty.is_dir()
            || ty.is_symlink()
            || ty.is_hard_link()
            || ty.is_file()
            || ty.is_contiguous();
        if !made {
            skip(&mut entry)?;
            continue;
        }
        if let Some(link) = rel.ancestors().skip(1).find(|a| links.contains(*a)) {
            return Err(malformed(format!(
                "{} is below the symlink {}",
                rel.display(),
                link.display()
            )));
        }
        match seen.get(&rel) {
            Some(true) if ty.is_dir() => {}
            Some(_) => {
                return Err(malformed(format!("{} appears twice", rel.display())));
            }
            None => {
                // The names are kept to the end (two or three copies each): bounded in all,
                // not only by count (2 million names of 4 KiB would be 16 GiB).
                names += rel.as_os_str().len() as u64;
                if names > max_name_bytes {
                    return Err(malformed(format!(
                        "its paths add up to over {max_name_bytes} bytes"
                    )));
                }
                seen.insert(rel.clone(), ty.is_dir());
            }
        }
        if ty.is_symlink() {
            links.insert(rel.clone());
        }
        let target = dest.join(&rel);
        let rel_s = rel.to_string_lossy().into_owned();
        let mut e = Entry {
            path: rel_s,
            kind: Kind::File,
            mode,
            uid,
            gid,
            mtime,
            size: 0,
            sha256: None,
            link: None,
        };
        // What is on disk decides, not the names: a case-insensitive volume (macOS) or a hard
        // link to a symlink makes a folder of the stream a link under another name.
        real_parents(dest, &rel).map_err(&malformed)?;
        if ty.is_dir() {
            e.kind = Kind::Dir;
            match std::fs::create_dir(&target) {
                Ok(()) => {}
                Err(x)
                    if x.kind() == std::io::ErrorKind::AlreadyExists
                        && std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) => {}
                Err(x) => return Err(ImageError::io("create", &target, x)),
            }
            dirs.insert(target.clone(), mode & 0o7777);
        } else if ty.is_symlink() || ty.is_hard_link() {
            e.kind = if ty.is_symlink() {
                Kind::Symlink
            } else {
                Kind::Hardlink
            };
            let link = entry
                .link_name()
                .map_err(tar_err)?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            e.link = Some(match e.kind {
                Kind::Hardlink => clean(Path::new(&link))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or(link.clone()),
                _ => link.clone(),
            });
            let made = if e.kind == Kind::Symlink {
                // No overwrite: an existing name (in any case) is an error.
                std::os::unix::fs::symlink(&link, &target)
            } else {
                // Only to a regular file this stream made (never to a symlink or a folder).
                let Some(src) = clean(Path::new(&link)).filter(|p| files.contains(p)) else {
                    return Err(malformed(format!(
                        "{} is a hard link to {link:?}, not to a file of the stream",
                        rel.display()
                    )));
                };
                std::fs::hard_link(dest.join(src), &target)
            };
            made.map_err(|x| ImageError::io("unpack", &target, x))?;
        } else {
            // A regular (or contiguous) file.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true) // O_EXCL: never through a link, never onto a case twin
                .open(&target)
                .map_err(|x| ImageError::io("create", &target, x))?;
            files.insert(rel.clone());
            let mut w = HashWriter {
                inner: f,
                hasher: Sha256::new(),
                n: 0,
            };
            std::io::copy(&mut entry, &mut w).map_err(|x| ImageError::io("write", &target, x))?;
            let keep = if as_root { 0o7777 } else { 0o1777 };
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & keep))
                .map_err(|x| ImageError::io("set the mode of", &target, x))?;
            e.size = w.n;
            e.sha256 = Some(hex(&w.hasher.finalize()));
            bytes += e.size;
        }
        if as_root {
            let _ = std::os::unix::fs::lchown(
                &target,
                u32::try_from(uid).ok(),
                u32::try_from(gid).ok(),
            );
        }
        serde_json::to_writer(&mut out, &e)
            .map_err(|x| ImageError::io("write", manifest, x.into()))?;
        out.write_all(b"\n")
            .map_err(|x| ImageError::io("write", manifest, x))?;
        count += 1;
    }
    // The writer pads the archive after its end marker: read to EOF so it never sees a broken pipe.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(tar_err)?;
    // Modes of folders last, deepest first, so a read-only folder did not block its contents.
    for (dir, mode) in dirs.iter().rev() {
        if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(malformed(format!(
                "{} is no longer a folder",
                dir.display()
            )));
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode))
            .map_err(|x| ImageError::io("set the mode of", dir, x))?;
    }
    out.flush()
        .and_then(|()| out.inner.get_ref().sync_all())
        .map_err(|x| ImageError::io("write", manifest, x))?;
    Ok(Unpacked {
        entries: count,
        bytes,
        manifest_sha256: hex(&out.hasher.finalize()),
    })
}

/// Reads a manifest, checking it against the digest recorded at build time.
pub fn read(manifest: &Path, expect_sha256: &str) -> Result<Vec<Entry>, String> {
    let data = std::fs::read(manifest).map_err(|e| format!("cannot read the manifest: {e}"))?;
    let got = hex(&Sha256::digest(&data));
    if got != expect_sha256 {
        return Err(format!(
            "the manifest's digest is {got}, expected {expect_sha256}"
        ));
    }
    let mut out = Vec::new();
    for (i, line) in BufReader::new(&data[..]).lines().enumerate() {
        let line = line.map_err(|e| format!("manifest line {}: {e}", i + 1))?;
        out.push(serde_json::from_str(&line).map_err(|e| format!("manifest line {}: {e}", i + 1))?);
    }
    Ok(out)
}

/// Checks every entry of `root` against the manifest: type, size, link target and the
/// SHA-256 of every file, and that nothing was added after the build. Returns the first
/// difference.
pub fn verify(root: &Path, entries: &[Entry]) -> Result<(), String> {
    let built: std::collections::HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let list = std::fs::read_dir(&dir).map_err(|x| format!("{}: {x}", dir.display()))?;
        for item in list {
            let item = item.map_err(|x| format!("{}: {x}", dir.display()))?;
            let child = rel.join(item.file_name());
            let name = child.to_string_lossy();
            if !built.contains(name.as_ref()) {
                return Err(format!(
                    "{name} is not part of the built image (added after the build)"
                ));
            }
            if item.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(child);
            }
        }
    }
    for e in entries {
        let p = root.join(&e.path);
        let meta = std::fs::symlink_metadata(&p).map_err(|x| format!("{}: {x}", e.path))?;
        let ft = meta.file_type();
        let ok = match e.kind {
            Kind::Dir => ft.is_dir(),
            Kind::Symlink => {
                ft.is_symlink()
                    && std::fs::read_link(&p)
                        .map(|t| Some(t.to_string_lossy().into_owned()) == e.link)
                        .unwrap_or(false)
            }
            Kind::File | Kind::Hardlink => ft.is_file(),
        };
        if !ok {
            return Err(format!("{} is not the {:?} that was built", e.path, e.kind));
        }
        if e.kind == Kind::File {
            if meta.size() != e.size {
                return Err(format!(
                    "{} has {} bytes, {} were built",
                    e.path,
                    meta.size(),
                    e.size
                ));
            }
            let mut f = File::open(&p).map_err(|x| format!("{}: {x}", e.path))?;
            let mut h = Sha256::new();
            std::io::copy(&mut f, &mut h).map_err(|x| format!("{}: {x}", e.path))?;
            if Some(hex(&h.finalize())) != e.sha256 {
                return Err(format!("{} has changed since the build", e.path));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exports the image unpacked into `img_dir` (as `u` says) to `out` and returns each
    /// regular file of its layer with its text; the export's error when it refuses.
    pub(super) fn exported_files(
        img_dir: &Path,
        u: Unpacked,
        out: &Path,
    ) -> Result<Vec<(String, String)>, ImageError> {
        let image = crate::store::Image {
            dir: img_dir.to_path_buf(),
            meta: crate::store::Metadata {
                hash: "h".into(),
                spec: crate::profile::builder_image(),
                mirror: "m".into(),
                builder: 1,
                built_at: 0,
                build_ms: 0,
                entries: u.entries,
                bytes: u.bytes,
                manifest_sha256: u.manifest_sha256,
            },
        };
        crate::oci::export(&image, out)?;
        let mut files = Vec::new();
        let mut ar = tar::Archive::new(File::open(out).unwrap());
        for e in ar.entries().unwrap() {
            let mut blob = Vec::new();
            e.unwrap().read_to_end(&mut blob).unwrap();
            if !blob.starts_with(&[0x1f, 0x8b]) {
                continue;
            }
            let mut layer = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
            for f in layer.entries().unwrap() {
                let mut f = f.unwrap();
                let path = f.path().unwrap().to_string_lossy().into_owned();
                let mut text = String::new();
                let _ = f.read_to_string(&mut text);
                files.push((path, text));
            }
        }
        Ok(files)
    }

    pub(super) fn hdr(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    }

    fn sample_tar() -> Vec<u8> {
        use tar::EntryType as T;
        let mut b = tar::Builder::new(Vec::new());
        let ok = |r: std::io::Result<()>| r.unwrap_or_else(|e| panic!("{e}"));
        ok(b.append_data(&mut hdr(T::Directory, 0o555, 0), "./usr/", std::io::empty()));
        ok(b.append_data(&mut hdr(T::Regular, 0o4755, 5), "./usr/tool", &b"hello"[..]));
        ok(b.append_link(&mut hdr(T::Symlink, 0o777, 0), "./bin", "usr"));
        ok(b.append_data(&mut hdr(T::Char, 0o666, 0), "./dev/null", std::io::empty()));
        ok(b.append_data(&mut hdr(T::Regular, 0o644, 1), "x", &b"x"[..]));
        b.into_inner().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn unpacks_records_and_verifies() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap_or_else(|e| panic!("{e}"));
        let man = dir.path().join("manifest.jsonl");
        let u = unpack(&sample_tar()[..], &root, &man, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.entries, 4);
        let mode = std::fs::metadata(root.join("usr/tool"))
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0);
        assert_eq!(mode, 0o755, "setuid dropped when unpacking as a user");
        assert!(!root.join("dev/null").exists());
        let entries = read(&man, &u.manifest_sha256).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries[1].mode, 0o4755, "the manifest keeps the built mode");
        assert_eq!(verify(&root, &entries), Ok(()));

        // Same size, different contents: caught by the hash.
        std::fs::set_permissions(root.join("usr"), std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("usr/tool"), "HELLO").unwrap_or_else(|e| panic!("{e}"));
        assert!(verify(&root, &entries).is_err_and(|e| e.contains("changed since the build")));
        std::fs::write(root.join("usr/tool"), "hello").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(verify(&root, &entries), Ok(()));
        // Something added after the build (a runtime's mount point, say) is found too.
        std::fs::create_dir_all(root.join("usr/home/ci")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify(&root, &entries),
            Err("usr/home is not part of the built image (added after the build)".into())
        );
        // A tampered manifest is refused.
        std::fs::write(&man, "{}\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(read(&man, &u.manifest_sha256).is_err());
    }

    /// A hostile stream (a build container's output) cannot write, create or chmod anything
    /// outside the image through a link it planted, nor replace an entry it wrote.
    #[test]
    fn a_stream_cannot_reach_outside_through_its_own_links() {
        use tar::EntryType as T;
        fn ok(r: std::io::Result<()>) {
            r.unwrap_or_else(|e| panic!("{e}"));
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(outside.join("victim"), "mine").unwrap_or_else(|e| panic!("{e}"));
        let out = outside.to_string_lossy().into_owned();
        let victim = outside.join("victim").to_string_lossy().into_owned();
        type Plant = Box<dyn Fn(&mut tar::Builder<Vec<u8>>)>;
        let cases: Vec<(&str, Plant)> = vec![
            (
                "a file below a linked folder",
                Box::new(move |b| {
                    ok(b.append_link(&mut hdr(T::Symlink, 0o777, 0), "etc", &out));
                    ok(b.append_data(&mut hdr(T::Regular, 0o644, 4), "etc/victim", &b"evil"[..]));
                }),
            ),
            (
                "a folder below a linked folder",
                Box::new({
                    let out = outside.to_string_lossy().into_owned();
                    move |b| {
                        ok(b.append_link(&mut hdr(T::Symlink, 0o777, 0), "a", &out));
                        ok(b.append_data(
                            &mut hdr(T::Directory, 0o700, 0),
                            "a/new",
                            std::io::empty(),
                        ));
                    }
                }),
            ),
            (
                "a file where a link is",
                Box::new({
                    let victim = victim.clone();
                    move |b| {
                        ok(b.append_link(&mut hdr(T::Symlink, 0o777, 0), "f", &victim));
                        ok(b.append_data(&mut hdr(T::Regular, 0o600, 4), "f", &b"evil"[..]));
                    }
                }),
            ),
            (
                "a folder where a link is (its mode set at the end)",
                Box::new({
                    let out = outside.to_string_lossy().into_owned();
                    move |b| {
                        ok(b.append_link(&mut hdr(T::Symlink, 0o777, 0), "d", &out));
                        ok(b.append_data(&mut hdr(T::Directory, 0o000, 0), "d", std::io::empty()));
                    }
                }),
            ),
            (
                "a file written twice",
                Box::new(|b| {
                    ok(b.append_data(&mut hdr(T::Regular, 0o644, 1), "x", &b"1"[..]));
                    ok(b.append_data(&mut hdr(T::Regular, 0o644, 1), "x", &b"2"[..]));
                }),
            ),
        ];
        for (what, plant) in cases {
            let root = dir.path().join("rootfs");
            let _ = crate::store::remove_tree(&root);
            std::fs::create_dir(&root).unwrap_or_else(|e| panic!("{e}"));
            let mut b = tar::Builder::new(Vec::new());
            plant(&mut b);
            let data = b.into_inner().unwrap_or_else(|e| panic!("{e}"));
            let e = unpack(&data[..], &root, &dir.path().join("m"), false)
                .err()
                .unwrap_or_else(|| panic!("{what}: accepted"));
            assert!(e.to_string().contains("malformed"), "{what}: {e}");
            assert_eq!(
                std::fs::read_to_string(outside.join("victim"))
                    .ok()
                    .as_deref(),
                Some("mine"),
                "{what}"
            );
            assert!(!outside.join("new").exists(), "{what}");
            let mode = std::fs::metadata(&outside)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_ne!(mode, 0, "{what}: the outside folder's mode changed");
        }
        // A folder named twice is fine (and paths with `..` are skipped, as before).
        let root = dir.path().join("rootfs");
        let _ = crate::store::remove_tree(&root);
        std::fs::create_dir(&root).unwrap_or_else(|e| panic!("{e}"));
        let mut b = tar::Builder::new(Vec::new());
        ok(b.append_data(&mut hdr(T::Directory, 0o755, 0), "usr", std::io::empty()));
        ok(b.append_data(&mut hdr(T::Directory, 0o755, 0), "usr/", std::io::empty()));
        let data = b.into_inner().unwrap_or_else(|e| panic!("{e}"));
        unpack(&data[..], &root, &dir.path().join("m"), false).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[cfg(test)]
mod hostile_stream_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tar::EntryType as T;

    use super::tests::hdr;

    /// A hard link to one of the stream's own symlinks is a second symlink that `links` does
    /// not know: the relative target that stayed inside from the first link's folder leaves
    /// `dest` from the second's, and the entries below it are written outside.
    #[test]
    fn a_hard_link_to_a_symlink_is_not_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("victim"), "mine").unwrap();

        let mut b = tar::Builder::new(Vec::new());
        // dest/outside exists, so dest/a/s -> ../outside canonicalizes inside dest (the tar
        // crate's check of a hard link's source passes) ...
        b.append_data(
            &mut hdr(T::Directory, 0o755, 0),
            "outside",
            std::io::empty(),
        )
        .unwrap();
        b.append_data(&mut hdr(T::Directory, 0o755, 0), "a", std::io::empty())
            .unwrap();
        b.append_link(&mut hdr(T::Symlink, 0o777, 0), "a/s", "../outside")
            .unwrap();
        // ... but `h`, the same symlink inode one level up, points at <dest>/../outside.
        b.append_link(&mut hdr(T::Link, 0o777, 0), "h", "a/s")
            .unwrap();
        b.append_data(&mut hdr(T::Regular, 0o644, 4), "h/victim", &b"evil"[..])
            .unwrap();
        b.append_data(&mut hdr(T::Directory, 0o000, 0), "h/new", std::io::empty())
            .unwrap();
        let data = b.into_inner().unwrap();

        let res = unpack(&data[..], &root, &dir.path().join("m"), false);
        let victim = std::fs::read_to_string(outside.join("victim")).unwrap();
        let new_mode =
            std::fs::metadata(outside.join("new")).map(|m| m.permissions().mode() & 0o777);
        let _ =
            std::fs::set_permissions(outside.join("new"), std::fs::Permissions::from_mode(0o755));
        assert!(
            res.is_err(),
            "the stream was accepted; outside/victim = {victim:?}, outside/new mode = {new_mode:?}"
        );
        assert_eq!(victim, "mine", "a file outside dest was overwritten");
        assert!(
            new_mode.is_err(),
            "a folder was created outside dest (mode {new_mode:?})"
        );
    }

    /// An extension entry (GNU long name or link, pax records) of `size` bytes of `fill`,
    /// then a file it would describe.
    fn with_extension(kind: T, size: usize, fill: u8) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_path("././@LongLink").unwrap();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(size as u64);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.resize(out.len() + size.div_ceil(512) * 512, fill);
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut hdr(T::Regular, 0o644, 2), "f", &b"hi"[..])
            .unwrap();
        out.extend(b.into_inner().unwrap());
        out
    }

    /// The tar crate keeps a long name, a long link name and pax records in memory whole: a
    /// stream whose header claims gigabytes (and sends them) is refused after 1 MiB instead.
    #[test]
    fn oversized_extension_headers_are_refused_not_buffered() {
        for kind in [T::GNULongName, T::GNULongLink, T::XHeader] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("rootfs");
            std::fs::create_dir(&root).unwrap();
            let data = with_extension(kind, 3 << 20, b'a');
            // Counts what the unpacking read: it stops at the bound, not at the end.
            struct Count<'a>(&'a [u8], std::rc::Rc<std::cell::Cell<usize>>);
            impl Read for Count<'_> {
                fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                    let n = self.0.read(buf)?;
                    self.1.set(self.1.get() + n);
                    Ok(n)
                }
            }
            let read = std::rc::Rc::new(std::cell::Cell::new(0));
            let res = unpack(
                Count(&data, read.clone()),
                &root,
                &dir.path().join("m"),
                false,
            );
            let err = res.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.contains("malformed") && err.contains("1024 KiB"),
                "{kind:?}: {err:?}"
            );
            assert!(
                read.get() <= (1 << 20) + 8192,
                "{kind:?}: read {} bytes",
                read.get()
            );
            assert!(!root.join("f").exists(), "{kind:?}");
        }
    }

    /// What real streams have passes: a name of 3000 bytes (a long-name entry), pax records
    /// (a long link target in pax format), and a big file the unpacking skips (under `dev/`).
    #[test]
    fn real_long_names_and_skipped_big_files_pass() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let long = format!("d/{}", "n".repeat(200));
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut hdr(T::Directory, 0o755, 0), "d", std::io::empty())
            .unwrap();
        b.append_data(&mut hdr(T::Regular, 0o644, 2), &long, &b"hi"[..])
            .unwrap();
        let big = vec![7u8; 3 << 20];
        b.append_data(
            &mut hdr(T::Regular, 0o644, big.len() as u64),
            "dev/shm/big",
            &big[..],
        )
        .unwrap();
        let mut pax = tar::Builder::new(Vec::new());
        let target = format!("/usr/{}", "t".repeat(300));
        pax.append_pax_extensions([("linkpath", target.as_bytes())])
            .unwrap();
        pax.append_link(&mut hdr(T::Symlink, 0o777, 0), "l", "x")
            .unwrap();
        let mut data = b.into_inner().unwrap();
        // Without the first stream's end marker (two zero blocks), then the second.
        let zeros = data.iter().rev().take_while(|b| **b == 0).count();
        data.truncate(data.len() - (zeros / 512) * 512);
        data.extend(pax.into_inner().unwrap());
        let u = unpack(&data[..], &root, &dir.path().join("m"), false).unwrap();
        assert_eq!(std::fs::read(root.join(&long)).unwrap(), b"hi");
        assert_eq!(
            std::fs::read_link(root.join("l")).unwrap(),
            PathBuf::from(&target)
        );
        assert!(!root.join("dev/shm/big").exists());
        assert_eq!(u.entries, 3);
    }

    /// Counts, per thread, the bytes live on the heap and their peak, so a test measures
    /// what `unpack` holds (not what the tests running beside it do).
    struct Counting;
    thread_local! {
        static LIVE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        static PEAK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    fn grew(n: usize) {
        let _ = LIVE.try_with(|l| {
            let v = l.get().saturating_add(n);
            l.set(v);
            let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
        });
    }
    fn shrank(n: usize) {
        let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(n)));
    }
    #[allow(unsafe_code)]
    // SAFETY: every call is passed on to `System` unchanged; only counters are updated.
    unsafe impl std::alloc::GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
            // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
            let p = unsafe { std::alloc::System.alloc(l) };
            if !p.is_null() {
                grew(l.size());
            }
            p
        }
        unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
            // SAFETY: as for `alloc`.
            let p = unsafe { std::alloc::System.alloc_zeroed(l) };
            if !p.is_null() {
                grew(l.size());
            }
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
            // SAFETY: `p` came from `System` (every allocation here does) with layout `l`.
            unsafe { std::alloc::System.dealloc(p, l) };
            shrank(l.size());
        }
        unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
            // SAFETY: as for `dealloc`; `new` is the caller's, as `realloc` requires.
            let q = unsafe { std::alloc::System.realloc(p, l, new) };
            if !q.is_null() {
                if new > l.size() {
                    grew(new - l.size());
                } else {
                    shrank(l.size() - new);
                }
            }
            q
        }
    }
    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// What `f` returned, and the most this thread's heap grew above its start while it ran.
    fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let base = LIVE.with(std::cell::Cell::get);
        PEAK.with(|p| p.set(base));
        let out = f();
        (out, PEAK.with(std::cell::Cell::get).saturating_sub(base))
    }

    /// A GNU long name entry for `name`, as raw blocks (the `tar::Builder` writes one only for
    /// names it must).
    fn long_name(name: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_path("././@LongLink").unwrap();
        h.set_entry_type(T::GNULongName);
        h.set_mode(0o644);
        h.set_size(name.len() as u64 + 1);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend(name);
        out.resize(512 + (name.len() + 1).div_ceil(512) * 512, 0);
        out
    }

    /// An entry of a type `unpack` skips (pax global records, a volume label, ...) names
    /// nothing that is made: its name must not be kept for the rest of the stream (nor is it
    /// counted as an entry), or a stream of them fills the memory as it goes, 4 KiB a name.
    #[test]
    fn names_of_skipped_entries_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let mut data = Vec::new();
        for i in 0..4096 {
            let mut name = format!("g{i}/").into_bytes();
            name.resize(4000, b'n');
            data.extend(long_name(&name));
            let mut h = hdr(T::XGlobalHeader, 0o644, 0);
            h.set_path("g").unwrap();
            h.set_cksum();
            data.extend(h.as_bytes());
        }
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut hdr(T::Regular, 0o644, 2), "f", &b"hi"[..])
            .unwrap();
        data.extend(b.into_inner().unwrap());
        let (res, peak) = peak_heap(|| unpack(&data[..], &root, &dir.path().join("m"), false));
        assert_eq!(res.unwrap().entries, 1);
        assert!(
            peak < 4 << 20,
            "unpacking 4096 skipped names of 4000 bytes held {} KiB",
            peak >> 10
        );
    }

    /// The error `unpack` ends with for `data` (a stream of `what`), which it must reach
    /// within 20 s (it runs on a thread of its own, left behind if it spins).
    fn refused_within_20_s(data: Vec<u8>, what: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let (m, r) = (dir.path().join("m"), root.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(unpack(&data[..], &r, &m, false).map_err(|e| e.to_string()));
        });
        let res = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the unpacking of {what} still runs after 20 s"));
        res.err().unwrap_or_default()
    }

    /// A GNU sparse entry of a few blocks whose holes (base-256 sizes) make it an exabyte:
    /// `skip` reads an entry through the tar reader, which makes the holes up as zeros, so
    /// it would read them all (the tar reader skips only what the stream holds).
    #[test]
    fn a_sparse_entry_cannot_make_the_unpacking_spin() {
        let mut h = tar::Header::new_gnu();
        h.set_path("s").unwrap();
        h.set_entry_type(T::GNUSparse);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let huge = 1u64 << 60;
        let gnu = h.as_gnu_mut().unwrap();
        gnu.set_real_size(huge);
        gnu.sparse[0].set_offset(huge);
        gnu.sparse[0].set_length(0);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut hdr(T::Regular, 0o644, 2), "f", &b"hi"[..])
            .unwrap();
        data.extend(b.into_inner().unwrap());
        let err = refused_within_20_s(data, "a 2 KiB stream");
        assert!(
            err.contains("malformed") && err.contains("sparse"),
            "{err:?}"
        );
    }

    /// A name of many short parts (a GNU long name under the 1 MiB bound): each of its
    /// ancestors is looked up among the stream's symlinks, hashing a name as long as the
    /// whole: quadratic, minutes per entry. No real path is over PATH_MAX (4096 bytes).
    #[test]
    fn a_name_of_many_parts_cannot_make_the_unpacking_spin() {
        let mut data = Vec::new();
        let mut b = tar::Builder::new(Vec::new());
        b.append_link(&mut hdr(T::Symlink, 0o777, 0), "l", "x")
            .unwrap();
        let mut first = b.into_inner().unwrap();
        first.truncate(first.len() - 1024);
        data.extend(first);
        data.extend(long_name(&b"a/".repeat(400 << 10)));
        data.extend(hdr(T::Regular, 0o644, 0).as_bytes());
        data.extend([0; 1024]);
        let err = refused_within_20_s(data, "one 800 KiB name");
        assert!(err.contains("malformed") && err.contains("4096"), "{err:?}");
    }

    /// The names kept to the end are bounded in all, not only by their count: past the
    /// bound (lowered here to 1000 bytes) the stream is refused and nothing more is made.
    #[test]
    fn all_names_together_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..20 {
            let name = format!("{i:02}-{}", "n".repeat(97));
            b.append_data(&mut hdr(T::Regular, 0o644, 1), &name, &b"x"[..])
                .unwrap();
        }
        let data = b.into_inner().unwrap();
        let err = unpack_within(&data[..], &root, &dir.path().join("m"), false, 1000)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("malformed") && err.contains("over 1000 bytes"),
            "{err:?}"
        );
        // Ten names of 100 bytes fit; the eleventh is refused before it is made.
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 10);
        // The real bound leaves room for real images and is far below what the count allows.
        let root2 = dir.path().join("rootfs2");
        std::fs::create_dir(&root2).unwrap();
        let u = unpack(&data[..], &root2, &dir.path().join("m2"), false).unwrap();
        assert_eq!(u.entries, 20);
        assert!(MAX_NAME_BYTES < MAX_ENTRIES * MAX_PATH_BYTES as u64 / 8);
    }

    /// What the tar reader builds from a GNU sparse map it reads within the bound (a list
    /// of pieces, two for each 24-byte block record) is several times what it read: measured
    /// here so that the factor stays known.
    #[test]
    fn a_sparse_map_within_the_bound_stays_a_few_mib() {
        let n_ext = 2000u64;
        let mut h = tar::Header::new_gnu();
        h.set_path("s").unwrap();
        h.set_entry_type(T::GNUSparse);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let records = 4 + 21 * n_ext;
        let gnu = h.as_gnu_mut().unwrap();
        gnu.set_real_size(records);
        for (i, s) in gnu.sparse.iter_mut().enumerate() {
            s.set_offset(i as u64 + 1);
            s.set_length(0);
        }
        gnu.set_is_extended(true);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        let mut off = 5;
        for i in 0..n_ext {
            let mut ext = tar::GnuExtSparseHeader::new();
            for s in ext.sparse_mut() {
                s.set_offset(off);
                s.set_length(0);
                off += 1;
            }
            ext.set_is_extended(i + 1 < n_ext);
            data.extend(ext.as_bytes());
        }
        data.extend([0; 1024]);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let (res, peak) = peak_heap(|| unpack(&data[..], &root, &dir.path().join("m"), false));
        eprintln!(
            "sparse map of {} KiB: peak heap {} KiB",
            data.len() >> 10,
            peak >> 10
        );
        assert!(res.is_err_and(|e| e.to_string().contains("sparse")));
        assert!(peak < 6 << 20, "peak heap {} KiB", peak >> 10);
    }
}

/// On a case-insensitive file system (APFS as macOS formats it, where the container build
/// is the default) `links`/`seen` compare names byte for byte while the file system does not.
/// Skipped where the temporary folder is case-sensitive (run it with TMPDIR on such a volume).
#[cfg(test)]
mod case_insensitive_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tar::EntryType as T;

    use super::tests::{exported_files, hdr};

    fn case_insensitive(dir: &Path) -> bool {
        std::fs::write(dir.join("probe"), "").unwrap();
        dir.join("PROBE").exists()
    }

    #[test]
    fn a_link_named_in_another_case_is_not_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        if !case_insensitive(dir.path()) {
            eprintln!("SKIP: {} is case-sensitive", dir.path().display());
            return;
        }
        let root = dir.path().join("rootfs");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("victim"), "mine").unwrap();
        let mut b = tar::Builder::new(Vec::new());
        // What GNU tar packs from a Linux root holding /Zz -> ../outside and a folder /zz with
        // a file: nothing an mmdebstrap build cannot contain.
        b.append_link(&mut hdr(T::Symlink, 0o777, 0), "Zz", "../outside")
            .unwrap();
        b.append_data(&mut hdr(T::Directory, 0o000, 0), "zz", std::io::empty())
            .unwrap();
        b.append_data(&mut hdr(T::Regular, 0o644, 4), "zz/victim", &b"evil"[..])
            .unwrap();
        let data = b.into_inner().unwrap();
        let res = unpack(&data[..], &root, &dir.path().join("m"), false);
        let mode = std::fs::metadata(&outside)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap();
        let _ = std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755));
        let victim = std::fs::read_to_string(outside.join("victim")).unwrap();
        assert!(
            res.is_err(),
            "accepted; outside/victim = {victim:?}, the outside folder's mode = {mode:o}"
        );
        assert_eq!(victim, "mine");
        assert_ne!(mode, 0);
    }

    /// The OCI export (`container image load` on macOS) reads a manifest `File` through the
    /// stream's symlink that replaced it (the tar crate's `overwrite` removes `secret` to make
    /// `SECRET`): a host file ends up in the image.
    #[test]
    fn a_file_replaced_by_a_link_in_another_case_is_not_exported_through_it() {
        let dir = tempfile::tempdir().unwrap();
        if !case_insensitive(dir.path()) {
            eprintln!("SKIP: {} is case-sensitive", dir.path().display());
            return;
        }
        let host_secret = dir.path().join("id_ed25519");
        std::fs::write(&host_secret, "KEY!").unwrap();
        let img_dir = dir.path().join("img");
        let root = img_dir.join(crate::store::ROOTFS);
        std::fs::create_dir_all(&root).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut hdr(T::Directory, 0o755, 0), "usr", std::io::empty())
            .unwrap();
        b.append_data(&mut hdr(T::Regular, 0o644, 4), "secret", &b"AAAA"[..])
            .unwrap();
        b.append_link(&mut hdr(T::Symlink, 0o777, 0), "SECRET", &host_secret)
            .unwrap();
        let data = b.into_inner().unwrap();
        let res = unpack(
            &data[..],
            &root,
            &img_dir.join(crate::store::MANIFEST),
            false,
        );
        let Ok(u) = res else { return }; // refused: fine
                                         // The archive itself off the case-insensitive volume (only the root is read from it).
        let out_dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
        let files = exported_files(&img_dir, u, &out_dir.path().join("image.tar")).unwrap();
        let found = files
            .iter()
            .find(|(p, _)| p == "secret")
            .map(|(_, text)| text.as_str())
            .unwrap_or_default();
        assert_eq!(found, "AAAA", "the layer's `secret` holds a host file");
    }
}

#[cfg(test)]
mod lossy_name_tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use tar::EntryType as T;

    use super::tests::{exported_files, hdr};

    /// The manifest keeps paths with `to_string_lossy`: a non-UTF-8 file name and a UTF-8
    /// symlink named like its lossy form are one manifest path, and the OCI export reads the
    /// `file` entry through the symlink (File::open follows it): a host file the build could
    /// not read (mmdebstrap's unshare root is a subordinate UID) lands in the image archive.
    #[test]
    fn a_lossy_name_does_not_export_a_host_file() {
        let dir = tempfile::tempdir().unwrap();
        let host_secret = dir.path().join("id_ed25519");
        std::fs::write(&host_secret, "KEY!").unwrap();
        let img_dir = dir.path().join("img");
        let root = img_dir.join(crate::store::ROOTFS);
        std::fs::create_dir_all(&root).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut hdr(T::Directory, 0o755, 0), "usr", std::io::empty())
            .unwrap();
        let raw = Path::new(std::ffi::OsStr::from_bytes(b"a\xff"));
        b.append_data(&mut hdr(T::Regular, 0o644, 4), raw, &b"AAAA"[..])
            .unwrap();
        b.append_link(&mut hdr(T::Symlink, 0o777, 0), "a\u{FFFD}", &host_secret)
            .unwrap();
        let data = b.into_inner().unwrap();
        let Ok(u) = unpack(
            &data[..],
            &root,
            &img_dir.join(crate::store::MANIFEST),
            false,
        ) else {
            return; // refused: fine
        };
        let Ok(files) = exported_files(&img_dir, u, &dir.path().join("image.tar")) else {
            return;
        };
        let leaked = files.iter().any(|(_, text)| text == "KEY!");
        assert!(!leaked, "the exported layer holds the host file's contents");
    }
}

/// Unpacks a tar file given in `WRAPIX_TEST_TAR` (a real mmdebstrap output), when set.
#[cfg(test)]
#[test]
fn unpacks_a_real_builder_stream() {
    let Ok(path) = std::env::var("WRAPIX_TEST_TAR") else {
        eprintln!("SKIP: WRAPIX_TEST_TAR is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path().join("rootfs");
    std::fs::create_dir(&root).unwrap_or_else(|e| panic!("{e}"));
    let f = File::open(path).unwrap_or_else(|e| panic!("{e}"));
    let u = unpack(f, &root, &dir.path().join("m"), false).unwrap_or_else(|e| panic!("{e}"));
    let entries = read(&dir.path().join("m"), &u.manifest_sha256).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(verify(&root, &entries), Ok(()));
    crate::store::remove_tree(&root).unwrap_or_else(|e| panic!("{e}"));
}
