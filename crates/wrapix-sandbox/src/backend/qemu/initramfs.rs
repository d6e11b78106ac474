//! The qemu backend's initramfs: wrapix's init binary as `/init` (with the shared libraries it
//! needs, found by the host's dynamic loader), the kernel modules the guest must load (virtio
//! over MMIO, the console ports, virtiofs, with their dependencies from `modules.dep`), and the
//! mount points. Written as an uncompressed cpio (newc) archive, cached by a SHA-256 over each
//! member's name, path, size, inode and modification time (hashing the contents took longer
//! than a boot's set-up), so that a run with unchanged inputs only links the cached file. A
//! debug build's init (60 MB, nearly all debug info) goes in stripped ([`small_init`]): every
//! byte of the archive is copied into the guest's memory and unpacked at each boot.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::SandboxError;

/// The modules the guest loads (their dependencies come first).
pub const MODULES: &[&str] = &["virtio_pci", "virtio_console", "virtiofs", "virtio_net"];

/// The host's dynamic loader, which lists a binary's libraries (`ld.so --list`).
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// Folders of the archive (besides the libraries' own).
const DIRS: &[&str] = &[
    "dev", "proc", "sys", "shares", "newroot", "files", "modules",
];

/// A file of the archive: where it goes and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub dest: String,
    pub source: PathBuf,
}

/// What goes in: `/init`, its libraries, the modules in load order.
pub fn members(init: &Path, modules_dir: &Path) -> Result<Vec<Member>, SandboxError> {
    let mut out = vec![Member {
        dest: "init".into(),
        source: init.to_owned(),
    }];
    for lib in libraries(init)? {
        out.push(Member {
            dest: lib.to_string_lossy().trim_start_matches('/').to_owned(),
            source: lib,
        });
    }
    for (i, m) in module_order(modules_dir, MODULES)?.into_iter().enumerate() {
        let name = m
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Member {
            dest: format!("modules/{i:02}-{name}"),
            source: m,
        });
    }
    Ok(out)
}

/// The shared libraries `bin` loads (none for a static binary), with the loader itself.
fn libraries(bin: &Path) -> Result<Vec<PathBuf>, SandboxError> {
    let out = std::process::Command::new(LOADER)
        .arg("--list")
        .arg(bin)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| SandboxError::io(format!("run {LOADER} --list"), e))?;
    if !out.status.success() {
        // A static binary ("not a dynamic executable").
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next().unwrap_or_default(),
            None => line.split_whitespace().next().unwrap_or_default(),
        };
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// `wanted` and their dependencies from `modules.dep`, dependencies first.
pub fn module_order(dir: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>, SandboxError> {
    let dep_file = dir.join("modules.dep");
    let text = std::fs::read_to_string(&dep_file)
        .map_err(|e| SandboxError::io(format!("read {}", dep_file.display()), e))?;
    let deps: std::collections::BTreeMap<String, (String, Vec<String>)> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, d)| {
            (
                module_name(m),
                (
                    m.trim().to_owned(),
                    d.split_whitespace().map(str::to_owned).collect(),
                ),
            )
        })
        .collect();
    let mut out: Vec<PathBuf> = Vec::new();
    fn visit(
        name: &str,
        deps: &std::collections::BTreeMap<String, (String, Vec<String>)>,
        dir: &Path,
        out: &mut Vec<PathBuf>,
        depth: usize,
    ) -> Result<(), String> {
        let (rel, ds) = deps
            .get(name)
            .ok_or_else(|| format!("the kernel has no module {name}"))?;
        if depth > 32 {
            return Err("modules.dep has a cycle".into());
        }
        for d in ds {
            visit(&module_name(d), deps, dir, out, depth + 1)?;
        }
        let p = dir.join(rel);
        if !out.contains(&p) {
            out.push(p);
        }
        Ok(())
    }
    for w in wanted {
        visit(w, &deps, dir, &mut out, 0).map_err(|what| SandboxError::Missing {
            what: format!("{what} (in {})", dep_file.display()),
            fix: "install linux-image-cloud-amd64 (its modules), or point WRAPIX_QEMU_KERNEL at a kernel with virtio-mmio, virtio-console and virtiofs".into(),
        })?;
    }
    Ok(out)
}

fn module_name(rel: &str) -> String {
    let base = rel.trim().rsplit('/').next().unwrap_or_default();
    base.split(".ko")
        .next()
        .unwrap_or_default()
        .replace('-', "_")
}

/// What identifies a file's version without reading it: its path, size, inode and
/// modification time.
fn identity(h: &mut Sha256, path: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)
        .map_err(|e| SandboxError::io(format!("stat {}", path.display()), e))?;
    h.update(path.as_os_str().as_encoded_bytes());
    h.update([0]);
    for n in [
        m.len(),
        m.dev(),
        m.ino(),
        m.mtime() as u64,
        m.mtime_nsec() as u64,
    ] {
        h.update(n.to_le_bytes());
    }
    Ok(())
}

fn hex(h: Sha256) -> String {
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cache key of an archive of `members`.
pub fn key(members: &[Member]) -> Result<String, SandboxError> {
    let mut h = Sha256::new();
    h.update(b"wrapix-initramfs-2\0");
    for m in members {
        h.update(m.dest.as_bytes());
        h.update([0]);
        identity(&mut h, &m.source)?;
    }
    Ok(hex(h))
}

/// `init` without its debug sections, kept in `cache` (by `init`'s identity); `init` itself
/// when `strip` is not installed or fails (a larger archive, a slower boot, nothing else).
pub fn small_init(init: &Path, cache: &Path) -> Result<PathBuf, SandboxError> {
    let mut h = Sha256::new();
    h.update(b"wrapix-init-stripped-1\0");
    identity(&mut h, init)?;
    let out = cache.join(format!("init-{}", hex(h)));
    if out.is_file() {
        return Ok(out);
    }
    let Some(strip) = crate::backend::find_program("strip", Some("/usr/bin:/bin")) else {
        return Ok(init.to_owned());
    };
    std::fs::create_dir_all(cache)
        .map_err(|e| SandboxError::io(format!("create {}", cache.display()), e))?;
    let tmp = cache.join(format!(".init.{}", std::process::id()));
    let ok = std::process::Command::new(strip)
        .arg("--strip-debug")
        .arg("-o")
        .arg(&tmp)
        .arg(init)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = std::fs::remove_file(&tmp);
        return Ok(init.to_owned());
    }
    std::fs::rename(&tmp, &out)
        .map_err(|e| SandboxError::io(format!("store {}", out.display()), e))?;
    Ok(out)
}

/// The archive of `members`: the folders, `/dev/console`, the files.
pub fn archive(members: &[Member]) -> Result<Vec<u8>, SandboxError> {
    let mut w = Cpio::default();
    let mut dirs: Vec<String> = DIRS.iter().map(|d| (*d).to_owned()).collect();
    for m in members {
        if let Some(parent) = Path::new(&m.dest).parent() {
            dirs.push(parent.to_string_lossy().into_owned());
        }
    }
    // Every ancestor, parents first.
    let mut all: Vec<String> = Vec::new();
    for d in &dirs {
        let mut acc = PathBuf::new();
        for c in Path::new(d).components() {
            acc.push(c);
            let s = acc.to_string_lossy().into_owned();
            if !s.is_empty() && !all.contains(&s) {
                all.push(s);
            }
        }
    }
    for d in &all {
        w.entry(d, 0o040755, &[], (0, 0));
    }
    w.entry("dev/console", 0o020600, &[], (5, 1));
    for m in members {
        let data = std::fs::read(&m.source)
            .map_err(|e| SandboxError::io(format!("read {}", m.source.display()), e))?;
        let mode = if m.dest.starts_with("modules/") {
            0o100644
        } else {
            0o100755
        };
        w.entry(&m.dest, mode, &data, (0, 0));
    }
    Ok(w.finish())
}

/// A cpio "newc" writer.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_headers_are_aligned_and_end_with_the_trailer() {
        let mut w = Cpio::default();
        w.entry("init", 0o100755, b"abc", (0, 0));
        let out = w.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        let s = String::from_utf8_lossy(&out);
        assert!(s.contains("TRAILER!!!"));
        // name size 5 ("init\0"), file size 3
        assert_eq!(&out[6 + 6 * 8..6 + 7 * 8], b"00000003");
        assert_eq!(&out[6 + 11 * 8..6 + 12 * 8], b"00000005");
    }

    #[test]
    fn modules_come_after_their_dependencies() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("modules.dep"),
            "kernel/fs/fuse/fuse.ko:\nkernel/fs/fuse/virtiofs.ko: kernel/virtio.ko kernel/fs/fuse/fuse.ko\nkernel/virtio.ko:\nkernel/virtio_mmio.ko: kernel/virtio.ko\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let got = module_order(dir.path(), &["virtio_mmio", "virtiofs"])
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = got
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap_or(p)
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "kernel/virtio.ko",
                "kernel/virtio_mmio.ko",
                "kernel/fs/fuse/fuse.ko",
                "kernel/fs/fuse/virtiofs.ko"
            ]
        );
        assert!(module_order(dir.path(), &["nope"]).is_err());
    }
}
