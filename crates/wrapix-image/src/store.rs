//! The image cache: `<images>/<hash>/{rootfs/, manifest.jsonl, image.json}`.
//!
//! - The name is the hash of the *spec* ([`ImageSpec::hash`]), so the launch-path check is a
//!   path join, one `stat` and a small JSON read — no hashing of the root filesystem.
//! - `image.json` is written last, inside the temporary build folder, which is then renamed
//!   into place: a folder named `<hash>` is complete or it is not there. An entry whose
//!   `image.json` is missing, unreadable or names another hash is corrupted: never used,
//!   moved aside and rebuilt.
//! - Deeper damage (a changed file in `rootfs/`) is found by [`Store::verify`], which checks
//!   every file against the manifest; `wrapix image build` runs it on an existing entry.
//! - Builds of the same hash are serialized by an exclusive `flock` on `<images>/.locks/<hash>`;
//!   the loser of a race finds the image complete once it gets the lock and does not build.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ImageError;
use crate::manifest;
use crate::profile::ImageSpec;

pub const ROOTFS: &str = "rootfs";
pub const MANIFEST: &str = "manifest.jsonl";
pub const METADATA: &str = "image.json";

/// `image.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub hash: String,
    pub spec: ImageSpec,
    pub mirror: String,
    pub builder: u32,
    /// Seconds since the epoch.
    pub built_at: u64,
    pub build_ms: u64,
    pub entries: u64,
    pub bytes: u64,
    pub manifest_sha256: String,
}

/// A complete image in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub dir: PathBuf,
    pub meta: Metadata,
}

impl Image {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join(ROOTFS)
    }
}

/// What is at `<images>/<hash>`.
#[derive(Debug)]
pub enum Lookup {
    Ready(Image),
    Missing,
    Corrupted(String),
}

#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    /// `$XDG_DATA_HOME/wrapix/images`, else `~/.local/share/wrapix/images`.
    pub fn from_env(env: &std::collections::BTreeMap<String, String>, home: &Path) -> Store {
        let data = env
            .get("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".local/share"));
        Store {
            root: data.join("wrapix/images"),
        }
    }

    pub fn dir(&self, hash: &str) -> PathBuf {
        self.root.join(hash)
    }

    /// The launch-path check: cheap, never hashes files.
    pub fn lookup(&self, hash: &str) -> Lookup {
        let dir = self.dir(hash);
        let meta_path = dir.join(METADATA);
        let data = match std::fs::read(&meta_path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return if dir.exists() {
                    Lookup::Corrupted(format!("{METADATA} is missing"))
                } else {
                    Lookup::Missing
                };
            }
            Err(e) => return Lookup::Corrupted(format!("{METADATA} cannot be read: {e}")),
        };
        let meta: Metadata = match serde_json::from_slice(&data) {
            Ok(m) => m,
            Err(e) => return Lookup::Corrupted(format!("{METADATA} is not valid: {e}")),
        };
        if meta.hash != hash {
            return Lookup::Corrupted(format!("{METADATA} describes image {}", meta.hash));
        }
        if !dir.join(ROOTFS).join("usr").is_dir() {
            return Lookup::Corrupted("rootfs/usr is missing".into());
        }
        Lookup::Ready(Image { dir, meta })
    }

    /// Every file of the image against its manifest (seconds for a large image).
    pub fn verify(&self, image: &Image) -> Result<(), ImageError> {
        let corrupted = |detail: String| ImageError::Corrupted {
            hash: image.meta.hash.clone(),
            detail,
        };
        let entries = manifest::read(&image.dir.join(MANIFEST), &image.meta.manifest_sha256)
            .map_err(corrupted)?;
        manifest::verify(&image.rootfs(), &entries).map_err(corrupted)
    }

    /// All complete images, and the names of corrupted entries.
    pub fn list(&self) -> Result<(Vec<Image>, Vec<String>), ImageError> {
        let mut images = Vec::new();
        let mut bad = Vec::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((images, bad)),
            Err(e) => return Err(ImageError::io("list", &self.root, e)),
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match self.lookup(&name) {
                Lookup::Ready(img) => images.push(img),
                _ => bad.push(name),
            }
        }
        images.sort_by_key(|i| std::cmp::Reverse(i.meta.built_at));
        Ok((images, bad))
    }

    /// Takes the build lock for `hash` (blocks until a concurrent build of it is done).
    pub fn lock(&self, hash: &str) -> Result<nix::fcntl::Flock<File>, ImageError> {
        let dir = self.root.join(".locks");
        std::fs::create_dir_all(&dir).map_err(|e| ImageError::io("create", &dir, e))?;
        let path = dir.join(hash);
        let f = File::create(&path).map_err(|e| ImageError::io("create", &path, e))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| ImageError::io("lock", &path, e.into()))
    }

    /// A fresh temporary folder for a build, inside the store (same filesystem as the target).
    pub fn temp_dir(&self, hash: &str) -> Result<tempfile::TempDir, ImageError> {
        std::fs::create_dir_all(&self.root).map_err(|e| ImageError::io("create", &self.root, e))?;
        tempfile::Builder::new()
            .prefix(&format!(".build-{hash}-"))
            .tempdir_in(&self.root)
            .map_err(|e| ImageError::io("create a build folder in", &self.root, e))
    }

    /// Writes `image.json` (temp file, fsync, rename) into a finished build folder.
    pub fn write_metadata(dir: &Path, meta: &Metadata) -> Result<(), ImageError> {
        let tmp = dir.join(".image.json.tmp");
        let path = dir.join(METADATA);
        let data = serde_json::to_vec_pretty(meta)
            .map_err(|e| ImageError::io("encode", &path, e.into()))?;
        let mut f = File::create(&tmp).map_err(|e| ImageError::io("create", &tmp, e))?;
        f.write_all(&data)
            .and_then(|()| f.sync_all())
            .map_err(|e| ImageError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| ImageError::io("rename", &tmp, e))
    }

    /// Moves a finished build folder into place as `<hash>`, moving a corrupted entry aside.
    pub fn commit(&self, build: tempfile::TempDir, hash: &str) -> Result<Image, ImageError> {
        let target = self.dir(hash);
        if target.exists() {
            self.remove(hash)?;
        }
        let from = build.keep();
        std::fs::rename(&from, &target).map_err(|e| ImageError::io("rename", &from, e))?;
        if let Ok(d) = File::open(&self.root) {
            let _ = d.sync_all();
        }
        match self.lookup(hash) {
            Lookup::Ready(img) => Ok(img),
            _ => Err(ImageError::Corrupted {
                hash: hash.to_owned(),
                detail: "the new image is not readable after the rename".into(),
            }),
        }
    }

    /// Removes an entry: renamed aside first (atomic), then deleted.
    pub fn remove(&self, hash: &str) -> Result<(), ImageError> {
        let dir = self.dir(hash);
        let trash = self
            .root
            .join(format!(".trash-{hash}-{}", std::process::id()));
        std::fs::rename(&dir, &trash).map_err(|e| ImageError::io("move aside", &dir, e))?;
        remove_tree(&trash)
    }

    /// Removes leftovers of interrupted builds and removals (not locked by a running build).
    pub fn clean_leftovers(&self) -> Result<Vec<PathBuf>, ImageError> {
        let mut removed = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return Ok(removed);
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hash = name
                .strip_prefix(".build-")
                .or_else(|| name.strip_prefix(".trash-"))
                .and_then(|r| r.split('-').next());
            let Some(hash) = hash else { continue };
            // A build in progress holds its lock; try it without waiting.
            let lock_path = self.root.join(".locks").join(hash);
            let busy = File::open(&lock_path)
                .ok()
                .map(|f| {
                    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
                })
                .unwrap_or(false);
            if !busy {
                remove_tree(&entry.path())?;
                removed.push(entry.path());
            }
        }
        Ok(removed)
    }
}

/// `remove_dir_all` that first makes read-only folders writable (images contain 0555 folders).
pub fn remove_tree(path: &Path) -> Result<(), ImageError> {
    fn open_up(p: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(p) {
            if m.is_dir() {
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
                if let Ok(rd) = std::fs::read_dir(p) {
                    for e in rd.flatten() {
                        open_up(&e.path());
                    }
                }
            }
        }
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    open_up(path);
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io("remove", path, e)),
    }
}
