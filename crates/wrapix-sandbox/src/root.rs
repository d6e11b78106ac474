//! The sandbox's root filesystem, as an input to every backend.
//!
//! A root is a list of [`RootEntry`]s: what to show read-only at which path. The `host` profile
//! lists the host's system folders and a few `/etc` files; an image (a later profile) is a single
//! read-only bind of its directory at `/`. Backends only read the list, so an image directory can
//! replace the host root without touching them.

use std::path::{Path, PathBuf};

pub mod etc;

/// One read-only piece of the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootEntry {
    /// Bind a host path read-only at `dest`.
    RoBind { source: PathBuf, dest: PathBuf },
    /// A symbolic link `dest -> target`.
    Symlink { target: PathBuf, dest: PathBuf },
    /// An empty directory (mount point for later entries).
    Dir { dest: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootFs {
    /// Human-readable name for `config show` and errors.
    pub name: String,
    pub entries: Vec<RootEntry>,
    /// The image's root directory, for backends that take a whole root (podman `--rootfs`).
    pub image: Option<PathBuf>,
}

/// Top-level host folders that make a working system: `/usr` and its merged-usr links.
const HOST_TOP: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Host `/etc` entries that programs need and that hold no secrets. For the `host` profile
/// they are assembled into one cached folder ([`etc`]), or else bound one by one.
pub const HOST_ETC: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    // Debian's chromium wrapper reads its flags from /etc/chromium.d (the browser profile).
    "chromium",
    "chromium.d",
    "debian_version",
    "gai.conf",
    "gitconfig",
    "host.conf",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "locale.gen",
    "localtime",
    "magic",
    "mime.types",
    "nanorc",
    "nsswitch.conf",
    "os-release",
    "profile",
    "profile.d",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "terminfo",
    "timezone",
    "vim",
    "wgetrc",
    "xattr.conf",
];

impl RootFs {
    /// The `host` profile: the host's system folders read-only, probed under `host_root`
    /// (`/` in production, a fixture in tests).
    pub fn host(host_root: &Path) -> Self {
        let mut root = Self::host_without_etc(host_root);
        root.bind_host_etc(host_root);
        root
    }

    /// [`RootFs::host`] without `/etc`, for a run that shows the assembled `/etc`
    /// ([`RootFs::use_assembled_etc`]) or else binds the host's entries one by one
    /// ([`RootFs::bind_host_etc`]): the entries are not looked at twice.
    pub fn host_without_etc(host_root: &Path) -> Self {
        let mut entries = Vec::new();
        for top in HOST_TOP {
            let src = host_root.join(top);
            let dest = Path::new("/").join(top);
            match std::fs::symlink_metadata(&src) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&src) {
                        entries.push(RootEntry::Symlink { target, dest });
                    }
                }
                Ok(m) if m.is_dir() => entries.push(RootEntry::RoBind { source: src, dest }),
                _ => {}
            }
        }
        RootFs {
            name: "host".into(),
            entries,
            image: None,
        }
    }

    /// Adds `/etc` with the host's [`HOST_ETC`] entries under `host_root`, one bind each.
    pub fn bind_host_etc(&mut self, host_root: &Path) {
        self.entries.push(RootEntry::Dir {
            dest: "/etc".into(),
        });
        for name in HOST_ETC {
            let src = host_root.join("etc").join(name);
            // `exists` follows links: a dangling link (e.g. into /run) is left out.
            if src.exists() {
                self.entries.push(RootEntry::RoBind {
                    source: src,
                    dest: Path::new("/etc").join(name),
                });
            }
        }
    }

    /// Shows `etc` (assembled from the host's, see [`etc`]) at `/etc` with one bind instead of
    /// one bind per entry, and its live entries bound from the host on top of it.
    pub fn use_assembled_etc(&mut self, etc: &etc::AssembledEtc) {
        let under_etc = |e: &RootEntry| match e {
            RootEntry::RoBind { dest, .. }
            | RootEntry::Symlink { dest, .. }
            | RootEntry::Dir { dest } => dest.starts_with("/etc"),
        };
        let at = self
            .entries
            .iter()
            .position(under_etc)
            .unwrap_or(self.entries.len());
        self.entries.retain(|e| !under_etc(e));
        let mut new = vec![RootEntry::RoBind {
            source: etc.dir.clone(),
            dest: "/etc".into(),
        }];
        new.extend(etc.live.iter().map(|(name, source)| RootEntry::RoBind {
            source: source.clone(),
            dest: Path::new("/etc").join(name),
        }));
        self.entries.splice(at..at, new);
    }

    /// An image's root filesystem, read-only. Each top-level entry of the image is bound (or
    /// linked) into the backend's own root, the way the `host` profile is, rather than the image
    /// at `/`: the backend's root stays a fresh tmpfs where mount points for `/home/USER`,
    /// `/workspace` and `/run/wrapix` can be created without writing to the cached image.
    /// Folders every backend provides itself (`/proc`, `/dev`, `/sys`, `/tmp`, `/run`, `/home`)
    /// are left out.
    pub fn image(name: &str, dir: &Path) -> Self {
        const PROVIDED: &[&str] = &["proc", "dev", "sys", "tmp", "run", "home", "workspace"];
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        names.sort();
        let mut entries = Vec::new();
        for n in names {
            if PROVIDED.iter().any(|p| n == *p) {
                continue;
            }
            let src = dir.join(&n);
            let dest = Path::new("/").join(&n);
            match std::fs::symlink_metadata(&src) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&src) {
                        entries.push(RootEntry::Symlink { target, dest });
                    }
                }
                Ok(m) if m.is_dir() || m.is_file() => {
                    entries.push(RootEntry::RoBind { source: src, dest })
                }
                _ => {}
            }
        }
        RootFs {
            name: name.into(),
            entries,
            image: Some(dir.to_owned()),
        }
    }

    /// Makes sure the backend can create a mount point at `dest` (a path in the sandbox). A
    /// missing `dest` below a read-only bound folder cannot be created there (the folder is the
    /// host's or the cached image's, and read-only), so that folder is replaced by a directory
    /// in the backend's own root holding a bind of each of its entries, level by level down to
    /// the missing part. Only the folders on the way to `dest` are split; nothing is written
    /// to the bound folders. Links on the way are left to the backend.
    pub fn make_room(&mut self, dest: &Path) {
        // Each round splits one folder one level deeper, so this ends within dest's depth.
        for _ in 0..dest.components().count() {
            let found = self.entries.iter().position(|e| {
                matches!(e, RootEntry::RoBind { dest: d, .. } if dest.starts_with(d) && dest != d)
            });
            let Some(i) = found else { return };
            let RootEntry::RoBind { source, dest: d } = self.entries[i].clone() else {
                return;
            };
            let Ok(rel) = dest.strip_prefix(&d) else {
                return;
            };
            let on_host = source.join(rel);
            if std::fs::symlink_metadata(&on_host).is_ok() || !source.is_dir() {
                return;
            }
            let mut children: Vec<std::ffi::OsString> = match std::fs::read_dir(&source) {
                Ok(rd) => rd.flatten().map(|e| e.file_name()).collect(),
                Err(_) => return,
            };
            children.sort();
            let mut split = vec![RootEntry::Dir { dest: d.clone() }];
            for c in children {
                let (src, at) = (source.join(&c), d.join(&c));
                match std::fs::symlink_metadata(&src) {
                    Ok(m) if m.file_type().is_symlink() => {
                        if let Ok(target) = std::fs::read_link(&src) {
                            split.push(RootEntry::Symlink { target, dest: at });
                        }
                    }
                    Ok(m) if m.is_dir() || m.is_file() => split.push(RootEntry::RoBind {
                        source: src,
                        dest: at,
                    }),
                    _ => {}
                }
            }
            self.entries.splice(i..=i, split);
        }
    }

    /// Whether `path` (absolute, in the sandbox) resolves to an executable file in this root.
    /// Used to decide whether the agent is installed.
    pub fn find_executable(&self, name: &str, path_dirs: &[&str]) -> Option<PathBuf> {
        for dir in path_dirs {
            let inside = Path::new(dir).join(name);
            if let Some(host) = self.host_path(&inside) {
                if is_executable(&host) {
                    return Some(inside);
                }
            }
        }
        None
    }

    /// The host path behind a sandbox path, following this root's links one level.
    pub(crate) fn host_path(&self, inside: &Path) -> Option<PathBuf> {
        let mut best: Option<(usize, PathBuf)> = None;
        for e in &self.entries {
            match e {
                RootEntry::RoBind { source, dest } => {
                    if let Ok(rest) = inside.strip_prefix(dest) {
                        let depth = dest.components().count();
                        if best.as_ref().is_none_or(|(d, _)| depth > *d) {
                            best = Some((depth, source.join(rest)));
                        }
                    }
                }
                RootEntry::Symlink { target, dest } => {
                    if let Ok(rest) = inside.strip_prefix(dest) {
                        let target = if target.is_absolute() {
                            target.clone()
                        } else {
                            dest.parent().unwrap_or(Path::new("/")).join(target)
                        };
                        return self.host_path(&target.join(rest));
                    }
                }
                RootEntry::Dir { .. } => {}
            }
        }
        best.map(|(_, p)| p)
    }
}

/// The root for an image profile, from the cache. The CLI builds a missing image before it
/// prepares a run; here a missing or damaged image is an error, never a fallback to the host.
pub fn image_root(
    img: &wrapix_image::ImageSpec,
    env: &std::collections::BTreeMap<String, String>,
    home: &Path,
) -> Result<RootFs, crate::SandboxError> {
    let store = wrapix_image::Store::from_env(env, home);
    let hash = img.hash(&wrapix_image::build::mirror(env));
    match store.lookup(&hash) {
        wrapix_image::store::Lookup::Ready(image) => Ok(RootFs::image(
            &format!("{} ({hash})", img.profile),
            &image.rootfs(),
        )),
        other => Err(crate::SandboxError::Unavailable {
            backend: "image",
            problem: match other {
                wrapix_image::store::Lookup::Corrupted(why) => {
                    format!(
                        "the image of profile {:?} is corrupted ({why})",
                        img.profile
                    )
                }
                _ => format!("the image of profile {:?} is not built", img.profile),
            },
            fix: format!("wrapix image build --profile {}", img.profile),
        }),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_root_mirrors_links_and_skips_missing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(r.join("etc")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(r.join("etc/hosts"), "").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(r.join("etc/shadow"), "").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("/run/nowhere", r.join("etc/resolv.conf"))
            .unwrap_or_else(|e| panic!("{e}"));
        let root = RootFs::host(r);
        assert_eq!(
            root.entries,
            vec![
                RootEntry::RoBind {
                    source: r.join("usr"),
                    dest: "/usr".into()
                },
                RootEntry::Symlink {
                    target: "usr/bin".into(),
                    dest: "/bin".into()
                },
                RootEntry::Dir {
                    dest: "/etc".into()
                },
                RootEntry::RoBind {
                    source: r.join("etc/hosts"),
                    dest: "/etc/hosts".into()
                },
            ]
        );
    }

    #[test]
    fn an_assembled_etc_replaces_the_per_entry_binds() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(r.join("etc/ssl")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(r.join("etc/hosts"), "").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap_or_else(|e| panic!("{e}"));
        let mut root = RootFs::host(r);
        let cache = r.join("cache/0123");
        root.use_assembled_etc(&etc::AssembledEtc::for_tests(
            &cache,
            &[("resolv.conf", "/etc/resolv.conf")],
        ));
        assert_eq!(
            root.entries,
            vec![
                RootEntry::RoBind {
                    source: r.join("usr"),
                    dest: "/usr".into()
                },
                RootEntry::Symlink {
                    target: "usr/bin".into(),
                    dest: "/bin".into()
                },
                RootEntry::RoBind {
                    source: cache.clone(),
                    dest: "/etc".into()
                },
                RootEntry::RoBind {
                    source: "/etc/resolv.conf".into(),
                    dest: "/etc/resolv.conf".into()
                },
            ]
        );
        assert_eq!(
            root.host_path(Path::new("/etc/ssl/certs")),
            Some(cache.join("ssl/certs"))
        );
        assert_eq!(
            root.host_path(Path::new("/etc/resolv.conf")),
            Some(PathBuf::from("/etc/resolv.conf"))
        );
    }

    #[test]
    fn finds_executables_through_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap_or_else(|e| panic!("{e}"));
        let tool = r.join("usr/bin/tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let root = RootFs::host(r);
        assert_eq!(
            root.find_executable("tool", &["/bin"]),
            Some(PathBuf::from("/bin/tool"))
        );
        assert_eq!(root.find_executable("nope", &["/bin", "/usr/bin"]), None);
    }

    #[test]
    fn make_room_splits_only_the_folders_on_the_way() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let img = t.path().join("rootfs");
        for d in ["usr/bin", "usr/local/share", "opt/tool", "var/lib"] {
            std::fs::create_dir_all(img.join(d)).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(img.join("usr/local/README"), "x").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("share", img.join("usr/local/doc"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut root = RootFs::image("t", &img);
        let before = root.entries.clone();
        // Existing paths and paths outside any bind need nothing.
        root.make_room(Path::new("/opt/tool"));
        root.make_room(Path::new("/data/x"));
        assert_eq!(root.entries, before);

        root.make_room(Path::new("/usr/local/abi/deep"));
        let has = |e: RootEntry| root.entries.contains(&e);
        let bind = |s: &str, d: &str| RootEntry::RoBind {
            source: img.join(s),
            dest: d.into(),
        };
        assert!(has(RootEntry::Dir {
            dest: "/usr".into()
        }));
        assert!(has(bind("usr/bin", "/usr/bin")));
        assert!(has(RootEntry::Dir {
            dest: "/usr/local".into()
        }));
        assert!(has(bind("usr/local/share", "/usr/local/share")));
        assert!(has(bind("usr/local/README", "/usr/local/README")));
        assert!(has(RootEntry::Symlink {
            target: "share".into(),
            dest: "/usr/local/doc".into()
        }));
        assert!(!has(bind("usr", "/usr")));
        assert!(!has(bind("usr/local", "/usr/local")));
        // Other folders stay whole, and the split keeps parents before children.
        assert!(has(bind("opt", "/opt")));
        assert!(has(bind("var", "/var")));
        let pos = |d: &str| {
            root.entries
                .iter()
                .position(|e| matches!(e, RootEntry::Dir { dest } if dest == Path::new(d)))
        };
        assert!(pos("/usr") < pos("/usr/local"));
    }
}
