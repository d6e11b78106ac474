//! What a git index file (versions 2 to 4) says that matters to the tripwire: its gitlinks
//! (submodule entries, mode 160000), and the entries whose flags make `git status` and
//! `git diff` silent about changes (assume-unchanged, skip-worktree). Everything is
//! bounds-checked: the agent may have written any bytes there.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// The object type bits of a gitlink entry's mode.
const GITLINK: u32 = 0o160000;
const TYPE_MASK: u32 = 0o170000;
/// ctime, mtime (8 each), dev, ino, mode, uid, gid, size (4 each).
const STAT_LEN: usize = 40;
const EXTENDED: u16 = 0x4000;
/// In the flags: `git update-index --assume-unchanged` (git calls it CE_VALID).
const ASSUME_VALID: u16 = 0x8000;
/// In the extended flags (version 3 and up): `git update-index --skip-worktree`.
const SKIP_WORKTREE: u16 = 0x4000;

/// A flag that makes git ignore an entry's file in the work tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Hiding {
    AssumeUnchanged,
    SkipWorktree,
}

impl Hiding {
    /// The `git update-index` option that set it.
    pub(crate) fn option(self) -> &'static str {
        match self {
            Hiding::AssumeUnchanged => "assume-unchanged",
            Hiding::SkipWorktree => "skip-worktree",
        }
    }
}

/// What the tripwire reads from an index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Index {
    pub gitlinks: BTreeSet<PathBuf>,
    /// Entries with a flag that hides their changes, and which.
    pub hidden: BTreeMap<PathBuf, BTreeSet<Hiding>>,
}

/// Reads `bytes`, an index whose object ids are `hash_len` bytes long (20 for SHA-1, 32 for
/// SHA-256), or says why it could not be read.
pub(crate) fn read(bytes: &[u8], hash_len: usize) -> Result<Index, String> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(4)? != b"DIRC" {
        return Err("it does not start with DIRC".into());
    }
    let version = r.u32()?;
    if !(2..=4).contains(&version) {
        return Err(format!("version {version} is not 2, 3 or 4"));
    }
    let count = r.u32()?;
    let mut out = Index::default();
    let mut path: Vec<u8> = Vec::new();
    for _ in 0..count {
        let start = r.pos;
        let stat = r.take(STAT_LEN)?;
        let mode = u32::from_be_bytes([stat[24], stat[25], stat[26], stat[27]]);
        r.take(hash_len)?;
        let flags = r.u16()?;
        let mut hiding = BTreeSet::new();
        if flags & ASSUME_VALID != 0 {
            hiding.insert(Hiding::AssumeUnchanged);
        }
        if flags & EXTENDED != 0 {
            if version < 3 {
                return Err("an extended entry in a version 2 index".into());
            }
            if r.u16()? & SKIP_WORKTREE != 0 {
                hiding.insert(Hiding::SkipWorktree);
            }
        }
        if version == 4 {
            let strip = r.varint()?;
            let keep = path
                .len()
                .checked_sub(strip)
                .ok_or("a path prefix longer than the previous path")?;
            path.truncate(keep);
            path.extend_from_slice(r.until_nul()?);
        } else {
            path.clear();
            path.extend_from_slice(r.until_nul()?);
            // Entries are padded with NULs to a multiple of 8 bytes (1 to 8 of them, the
            // terminating one included).
            let len = r.pos - start;
            let padded = len.div_ceil(8) * 8;
            r.take(padded - len)?;
        }
        if mode & TYPE_MASK == GITLINK {
            out.gitlinks
                .insert(PathBuf::from(OsString::from_vec(path.clone())));
        }
        if !hiding.is_empty() {
            out.hidden
                .insert(PathBuf::from(OsString::from_vec(path.clone())), hiding);
        }
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("it ends early, at byte {}", self.bytes.len()))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// git's offset varint: 7 bits a byte, high bit "more", each continuation adds one.
    fn varint(&mut self) -> Result<usize, String> {
        let mut b = self.take(1)?[0];
        let mut value = usize::from(b & 0x7f);
        while b & 0x80 != 0 {
            b = self.take(1)?[0];
            value = value
                .checked_add(1)
                .and_then(|v| v.checked_mul(128))
                .and_then(|v| v.checked_add(usize::from(b & 0x7f)))
                .ok_or("a path prefix length that overflows")?;
        }
        Ok(value)
    }

    fn until_nul(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("a path without its terminating NUL")?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "protocol.file.allow=always",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A repository with files and one gitlink `deep/sub`, its index in `version`.
    fn index_with_gitlink(version: &str) -> Vec<u8> {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        git(d, &["init", "-q"]);
        std::fs::create_dir_all(d.join("deep/sub")).unwrap();
        for f in ["a", "deep/b", "deep/c-long-name", "z"] {
            std::fs::write(d.join(f), f).unwrap();
        }
        git(&d.join("deep/sub"), &["init", "-q"]);
        std::fs::write(d.join("deep/sub/f"), "f").unwrap();
        git(&d.join("deep/sub"), &["add", "f"]);
        git(&d.join("deep/sub"), &["commit", "-qm", "x"]);
        git(d, &["add", "-A"]);
        // An intent-to-add entry sets the extended flag (version 3 and up).
        std::fs::write(d.join("ita"), "i").unwrap();
        git(d, &["add", "-N", "ita"]);
        git(d, &["update-index", "--index-version", version]);
        std::fs::read(d.join(".git/index")).unwrap()
    }

    #[test]
    fn finds_gitlinks_in_every_version() {
        for v in ["2", "3", "4"] {
            let bytes = index_with_gitlink(v);
            let links = read(&bytes, 20).unwrap().gitlinks;
            assert_eq!(
                links,
                BTreeSet::from([PathBuf::from("deep/sub")]),
                "version {v}"
            );
        }
    }

    /// `index_with_gitlink`, then `git update-index --OPTION PATH` for each pair.
    fn index_with_flags(version: &str, flags: &[(&str, &str)]) -> Vec<u8> {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        git(d, &["init", "-q"]);
        for f in ["a", "b", "deep/c", "deep/d-long-name"] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), f).unwrap();
        }
        git(d, &["add", "-A"]);
        for (option, path) in flags {
            git(d, &["update-index", &format!("--{option}"), path]);
        }
        git(d, &["update-index", "--index-version", version]);
        std::fs::read(d.join(".git/index")).unwrap()
    }

    #[test]
    fn finds_hiding_flags_in_every_version() {
        use Hiding::*;
        let flags = [
            ("assume-unchanged", "a"),
            ("skip-worktree", "deep/c"),
            ("assume-unchanged", "deep/d-long-name"),
            ("skip-worktree", "deep/d-long-name"),
        ];
        for v in ["3", "4"] {
            let index = read(&index_with_flags(v, &flags), 20).unwrap();
            assert_eq!(
                index.hidden,
                BTreeMap::from([
                    (PathBuf::from("a"), BTreeSet::from([AssumeUnchanged])),
                    (PathBuf::from("deep/c"), BTreeSet::from([SkipWorktree])),
                    (
                        PathBuf::from("deep/d-long-name"),
                        BTreeSet::from([AssumeUnchanged, SkipWorktree])
                    ),
                ]),
                "version {v}"
            );
        }
        // Version 2 has no extended flags: git writes version 3 as soon as one is needed, so
        // only assume-unchanged can be in a version 2 index.
        let index = read(&index_with_flags("2", &[("assume-unchanged", "b")]), 20).unwrap();
        assert_eq!(
            index.hidden,
            BTreeMap::from([(PathBuf::from("b"), BTreeSet::from([AssumeUnchanged]))])
        );
        assert!(read(&index_with_flags("4", &[]), 20)
            .unwrap()
            .hidden
            .is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read(b"", 20).is_err());
        assert!(read(b"DIRC\0\0\0\x05\0\0\0\0", 20)
            .unwrap_err()
            .contains("version 5"));
        let mut bytes = index_with_gitlink("4");
        bytes.truncate(bytes.len() / 2);
        assert!(read(&bytes, 20).is_err());
        // Claims many entries it does not have.
        assert!(read(b"DIRC\0\0\0\x02\xff\xff\xff\xff", 20).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = read(&bytes, 20);
        }

        #[test]
        fn never_panics_on_mangled_indexes(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            static BASE: OnceLock<Vec<u8>> = OnceLock::new();
            let mut bytes = BASE.get_or_init(|| index_with_gitlink("4")).clone();
            for (at, b) in flips {
                let i = at % bytes.len();
                bytes[i] = b;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = read(&bytes, 20);
            let _ = read(&bytes, 32);
        }
    }
}
