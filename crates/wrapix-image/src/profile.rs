//! Profiles: named package sets. The built-in ones are data here; user profiles come from
//! `[profiles.NAME]` and may extend any other profile. [`resolve`] flattens the chain into an
//! [`ImageSpec`], the input of the content hash.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::package::Package;

/// Claude Code, pinned: the newest release whose `engines` accept the Node.js 20 that builds it.
/// Claude Code ships a native binary, so the image itself needs no Node.js.
pub const AGENT_PACKAGE: &str = "npm:@anthropic-ai/claude-code@2.1.197";

/// The Debian release images are built from.
pub const SUITE: &str = "bookworm";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Bumped whenever the builder changes what it puts into an image (part of every hash).
pub const BUILDER_VERSION: u32 = 1;

/// The profile that is not an image: the host's system folders, read-only.
pub const HOST: &str = "host";

/// A profile as defined (built in or in a config file), before `extends` is followed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileDef {
    pub extends: Option<String>,
    pub packages: Vec<Package>,
    pub env: BTreeMap<String, String>,
    pub description: String,
}

struct Builtin {
    name: &'static str,
    extends: Option<&'static str>,
    packages: &'static [&'static str],
    /// Run-time environment (`[env]` and `-e` win).
    env: &'static [(&'static str, &'static str)],
    description: &'static str,
}

/// Where Debian's Chromium is, for the browser automation tools (docs/desktop.md).
pub const CHROMIUM: &str = "/usr/bin/chromium";

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "base",
        extends: None,
        packages: &[
            "git",
            "ripgrep",
            "fd-find",
            "jq",
            "vim",
            "ca-certificates",
            "curl",
            "openssh-client",
            "less",
            "procps",
            AGENT_PACKAGE,
        ],
        env: &[],
        description: "git, ripgrep, fd, jq, vim, curl, ssh, less, procps and Claude Code",
    },
    Builtin {
        name: "rust",
        extends: Some("base"),
        packages: &[
            "rustc",
            "cargo",
            "gcc",
            "libc6-dev",
            "pkg-config",
            "libssl-dev",
        ],
        env: &[],
        description:
            "base + Debian's Rust toolchain (rustc, cargo), gcc, pkg-config, OpenSSL headers",
    },
    Builtin {
        name: "python",
        extends: Some("base"),
        packages: &[
            "python3",
            "python3-pip",
            "python3-venv",
            "pip:uv",
            "pip:ruff",
            "pip:ty",
        ],
        env: &[],
        description: "base + python3, pip, venv, uv, ruff, ty",
    },
    Builtin {
        name: "browser",
        extends: Some("base"),
        // Chromium brings the libraries it needs as dependencies (--no-install-recommends
        // leaves out only the optional ones); the fonts are what pages render with.
        packages: &[
            "chromium",
            "fonts-liberation",
            "fonts-dejavu-core",
            "fonts-noto-color-emoji",
        ],
        // Puppeteer and Playwright find Debian's Chromium, and download no browser of their own.
        env: &[
            ("CHROME_PATH", CHROMIUM),
            ("PUPPETEER_EXECUTABLE_PATH", CHROMIUM),
            ("PUPPETEER_SKIP_DOWNLOAD", "1"),
            ("PUPPETEER_SKIP_CHROMIUM_DOWNLOAD", "1"),
            // Playwright reads no variable for the path: launch({ executablePath:
            // process.env.CHROME_PATH }) (docs/desktop.md).
            ("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
        ],
        description: "base + Debian's Chromium (headless and headed) and fonts",
    },
];

/// The image of `wrapix builder` (docs/builder.md): sshd and Debian's Nix (`nix-daemon`,
/// `nix-store`). Not a sandbox profile: it is not in [`builtin_names`] and `--profile` cannot
/// select it.
pub fn builder_image() -> ImageSpec {
    ImageSpec {
        profile: "builder".to_owned(),
        packages: ["openssh-server", "nix-bin", "ca-certificates"]
            .iter()
            .filter_map(|p| Package::parse(p).ok())
            .collect(),
        env: BTreeMap::new(),
    }
}

/// Names of the built-in profiles, `host` first.
pub fn builtin_names() -> Vec<&'static str> {
    std::iter::once(HOST)
        .chain(BUILTINS.iter().map(|b| b.name))
        .collect()
}

pub fn is_builtin(name: &str) -> bool {
    name == HOST || BUILTINS.iter().any(|b| b.name == name)
}

/// A built-in image profile (not `host`).
pub fn builtin(name: &str) -> Option<ProfileDef> {
    let b = BUILTINS.iter().find(|b| b.name == name)?;
    Some(ProfileDef {
        extends: b.extends.map(str::to_owned),
        packages: b
            .packages
            .iter()
            .filter_map(|p| Package::parse(p).ok())
            .collect(),
        env: b
            .env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        description: b.description.to_owned(),
    })
}

/// Everything an image is built from: the resolved package set. The profile's `env` is
/// applied at run time and is not part of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// The profile name (for messages and `image list`).
    pub profile: String,
    pub packages: BTreeSet<Package>,
    pub env: BTreeMap<String, String>,
}

/// What goes into the hash: everything that changes the built image, nothing else.
#[derive(Serialize)]
struct HashInput<'a> {
    builder: u32,
    suite: &'a str,
    mirror: &'a str,
    packages: Vec<String>,
}

impl ImageSpec {
    /// Adds the project's extra packages.
    pub fn with_packages(mut self, extra: impl IntoIterator<Item = Package>) -> Self {
        self.packages.extend(extra);
        self
    }

    /// Debian packages, including the ones the npm/pip steps need.
    pub fn debs(&self) -> Vec<String> {
        let mut out: BTreeSet<String> = self
            .packages
            .iter()
            .filter_map(|p| match p {
                Package::Deb { name } => Some(name.clone()),
                _ => None,
            })
            .collect();
        if !self.pips().is_empty() {
            out.insert("python3-pip".into());
        }
        // JavaScript tools need Node.js at run time; Claude Code is a native binary and does not.
        let agent = Package::parse(AGENT_PACKAGE).ok();
        if self
            .packages
            .iter()
            .any(|p| matches!(p, Package::Npm { .. }) && Some(p) != agent.as_ref())
        {
            out.insert("nodejs".into());
        }
        out.into_iter().collect()
    }

    pub fn npms(&self) -> Vec<String> {
        self.packages
            .iter()
            .filter(|p| matches!(p, Package::Npm { .. }))
            .map(Package::install_arg)
            .collect()
    }

    pub fn pips(&self) -> Vec<String> {
        self.packages
            .iter()
            .filter(|p| matches!(p, Package::Pip { .. }))
            .map(Package::install_arg)
            .collect()
    }

    /// The content hash naming the image: builder version, suite, mirror and packages.
    pub fn hash(&self, mirror: &str) -> String {
        let input = HashInput {
            builder: BUILDER_VERSION,
            suite: SUITE,
            mirror,
            packages: self
                .debs()
                .into_iter()
                .chain(self.npms().into_iter().map(|p| format!("npm:{p}")))
                .chain(self.pips().into_iter().map(|p| format!("pip:{p}")))
                .collect(),
        };
        let json = serde_json::to_vec(&input).unwrap_or_default();
        let digest = Sha256::digest(&json);
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown profile {name:?}")]
    Unknown { name: String, known: Vec<String> },
    #[error("profiles extend each other in a cycle: {}", chain.join(" -> "))]
    Cycle { chain: Vec<String> },
    #[error("profile {name:?} extends \"host\", which is not an image")]
    ExtendsHost { name: String },
}

/// Resolves `name` against the built-ins and the user's profiles. `Ok(None)` is the `host`
/// profile. User profiles may not reuse a built-in name (the caller rejects that earlier).
pub fn resolve(
    name: &str,
    user: &BTreeMap<String, ProfileDef>,
) -> Result<Option<ImageSpec>, ResolveError> {
    if name == HOST {
        return Ok(None);
    }
    let mut chain: Vec<String> = Vec::new();
    let mut defs: Vec<ProfileDef> = Vec::new();
    let mut current = name.to_owned();
    loop {
        if chain.contains(&current) {
            chain.push(current);
            return Err(ResolveError::Cycle { chain });
        }
        let def = user
            .get(&current)
            .cloned()
            .or_else(|| builtin(&current))
            .ok_or_else(|| {
                if current == HOST {
                    ResolveError::ExtendsHost {
                        name: chain.last().cloned().unwrap_or_default(),
                    }
                } else {
                    ResolveError::Unknown {
                        name: current.clone(),
                        known: builtin_names()
                            .into_iter()
                            .map(str::to_owned)
                            .chain(user.keys().cloned())
                            .collect(),
                    }
                }
            })?;
        chain.push(current.clone());
        let next = def.extends.clone();
        defs.push(def);
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    let mut spec = ImageSpec {
        profile: name.to_owned(),
        packages: BTreeSet::new(),
        env: BTreeMap::new(),
    };
    // Base first, so a derived profile's env wins.
    for def in defs.into_iter().rev() {
        spec.packages.extend(def.packages);
        spec.env.extend(def.env);
    }
    Ok(Some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(extends: Option<&str>, packages: &[&str]) -> ProfileDef {
        ProfileDef {
            extends: extends.map(str::to_owned),
            packages: packages
                .iter()
                .map(|p| Package::parse(p).unwrap_or_else(|e| panic!("{e:?}")))
                .collect(),
            ..ProfileDef::default()
        }
    }

    #[test]
    fn builtins_resolve_and_carry_the_agent() {
        for name in ["base", "rust", "python", "browser"] {
            let spec = resolve(name, &BTreeMap::new())
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("{name} is an image"));
            assert!(spec.npms().iter().any(|p| p.contains("claude-code")));
            assert!(spec.debs().contains(&"git".to_owned()));
        }
        assert_eq!(resolve("host", &BTreeMap::new()), Ok(None));
        let py = resolve("python", &BTreeMap::new()).ok().flatten();
        assert!(py.is_some_and(|p| p.debs().contains(&"python3-pip".to_owned())));
        let browser = resolve("browser", &BTreeMap::new()).ok().flatten();
        let Some(browser) = browser else {
            panic!("browser")
        };
        assert!(browser.debs().contains(&"chromium".to_owned()));
        assert!(browser.debs().contains(&"git".to_owned()));
        assert_eq!(
            browser
                .env
                .get("PUPPETEER_EXECUTABLE_PATH")
                .map(String::as_str),
            Some(CHROMIUM)
        );
    }

    #[test]
    fn user_profiles_extend_and_unknown_or_cyclic_fail() {
        let mut user = BTreeMap::new();
        user.insert("mine".to_owned(), def(Some("rust"), &["sqlite3"]));
        let spec = resolve("mine", &user).ok().flatten();
        let debs = spec.map(|s| s.debs()).unwrap_or_default();
        assert!(debs.contains(&"sqlite3".to_owned()) && debs.contains(&"cargo".to_owned()));

        user.insert("a".to_owned(), def(Some("b"), &[]));
        user.insert("b".to_owned(), def(Some("a"), &[]));
        assert_eq!(
            resolve("a", &user),
            Err(ResolveError::Cycle {
                chain: vec!["a".into(), "b".into(), "a".into()]
            })
        );
        assert!(matches!(
            resolve("nope", &user),
            Err(ResolveError::Unknown { .. })
        ));
        user.insert("h".to_owned(), def(Some("host"), &[]));
        assert!(matches!(
            resolve("h", &user),
            Err(ResolveError::ExtendsHost { .. })
        ));
    }

    #[test]
    fn hash_depends_on_packages_only() {
        let base = resolve("base", &BTreeMap::new()).ok().flatten();
        let Some(base) = base else { panic!("base") };
        let mut renamed = base.clone();
        renamed.profile = "other".into();
        renamed.env.insert("X".into(), "1".into());
        assert_eq!(base.hash(DEFAULT_MIRROR), renamed.hash(DEFAULT_MIRROR));
        let more = base.clone().with_packages(Package::parse("sqlite3").ok());
        assert_ne!(base.hash(DEFAULT_MIRROR), more.hash(DEFAULT_MIRROR));
        assert_ne!(
            base.hash(DEFAULT_MIRROR),
            base.hash("http://mirror.example/debian")
        );
        assert_eq!(base.hash(DEFAULT_MIRROR).len(), 32);
    }
}
