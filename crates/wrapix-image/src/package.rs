//! Package specs as written in `packages = [...]`: a Debian package name, `npm:NAME[@VERSION]`
//! or `pip:NAME[==VERSION]`. Parsing is strict so that every accepted spec is safe to write,
//! one per line, into the list files the build hooks read (never into a shell string).

use std::fmt;

use serde::{Deserialize, Serialize};

/// One package of an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Package {
    /// A Debian package, installed by apt.
    Deb { name: String },
    /// An npm package, installed into `/usr/local`.
    Npm {
        name: String,
        version: Option<String>,
    },
    /// A PyPI package, installed by the image's own `pip`.
    Pip {
        name: String,
        version: Option<String>,
    },
}

/// Why a spec was rejected, and how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadPackage {
    pub message: String,
    pub fix: String,
}

fn bad(message: String, fix: &str) -> BadPackage {
    BadPackage {
        message,
        fix: fix.to_owned(),
    }
}

impl Package {
    pub fn parse(s: &str) -> Result<Package, BadPackage> {
        if let Some(rest) = s.strip_prefix("npm:") {
            parse_npm(s, rest)
        } else if let Some(rest) = s.strip_prefix("pip:") {
            parse_pip(s, rest)
        } else if s.contains(':') {
            Err(bad(
                format!("package {s:?} has an unknown prefix"),
                "use a Debian package name, npm:NAME[@VERSION] or pip:NAME[==VERSION]",
            ))
        } else if is_deb_name(s) {
            Ok(Package::Deb { name: s.to_owned() })
        } else {
            Err(bad(
                format!("{s:?} is not a Debian package name"),
                "use lowercase letters, digits and + - . (e.g. \"ripgrep\"), or npm:/pip: for other registries",
            ))
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Package::Deb { name } | Package::Npm { name, .. } | Package::Pip { name, .. } => name,
        }
    }

    /// The line written to the hook's list file (`NAME`, `NAME@VER`, `NAME==VER`).
    pub fn install_arg(&self) -> String {
        match self {
            Package::Deb { name } => name.clone(),
            Package::Npm { name, version } => match version {
                Some(v) => format!("{name}@{v}"),
                None => name.clone(),
            },
            Package::Pip { name, version } => match version {
                Some(v) => format!("{name}=={v}"),
                None => name.clone(),
            },
        }
    }
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Package::Deb { name } => f.write_str(name),
            Package::Npm { .. } => write!(f, "npm:{}", self.install_arg()),
            Package::Pip { .. } => write!(f, "pip:{}", self.install_arg()),
        }
    }
}

/// Debian policy: `[a-z0-9][a-z0-9+.-]+`.
fn is_deb_name(s: &str) -> bool {
    s.len() >= 2
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '-'))
}

/// Version strings: letters, digits and `. - + _ ~ ^ * < > =` (ranges and tags), no spaces.
fn is_version(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_' | '~' | '^' | '*')
        })
}

fn npm_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 214
        && !s.starts_with(['.', '_', '-'])
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'))
}

const NPM_FIX: &str =
    "write npm:NAME or npm:NAME@VERSION, e.g. npm:typescript@5.6.3 or npm:@scope/tool";

fn parse_npm(full: &str, rest: &str) -> Result<Package, BadPackage> {
    // A scoped name starts with `@`; the version separator is the next `@`.
    let (name, version) = match rest.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('@') {
            Some((n, v)) => (format!("@{n}"), Some(v)),
            None => (rest.to_owned(), None),
        },
        None => match rest.split_once('@') {
            Some((n, v)) => (n.to_owned(), Some(v)),
            None => (rest.to_owned(), None),
        },
    };
    let name_ok = match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, pkg)| npm_part(scope) && npm_part(pkg)),
        None => npm_part(&name),
    };
    if !name_ok {
        return Err(bad(
            format!("{full:?} is not a valid npm package name"),
            NPM_FIX,
        ));
    }
    if let Some(v) = version {
        if !is_version(v) {
            return Err(bad(
                format!("{full:?} has an invalid version {v:?}"),
                NPM_FIX,
            ));
        }
    }
    Ok(Package::Npm {
        name,
        version: version.map(str::to_owned),
    })
}

const PIP_FIX: &str = "write pip:NAME or pip:NAME==VERSION, e.g. pip:ruff==0.6.9";

fn parse_pip(full: &str, rest: &str) -> Result<Package, BadPackage> {
    if rest.contains(['<', '>', '!', '~', ';', '[', '@']) || rest.matches('=').count() > 2 {
        return Err(bad(
            format!("{full:?} has an invalid version: only an exact NAME==VERSION is supported"),
            PIP_FIX,
        ));
    }
    let (name, version) = match rest.split_once("==") {
        Some((n, v)) => (n, Some(v)),
        None => (rest, None),
    };
    // PEP 508 names: letters, digits, `-`, `_`, `.`, starting and ending alphanumeric.
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(bad(
            format!("{full:?} is not a valid PyPI package name"),
            PIP_FIX,
        ));
    }
    if let Some(v) = version {
        if !is_version(v) || v.contains(['<', '>', '=']) {
            return Err(bad(
                format!("{full:?} has an invalid version {v:?}"),
                PIP_FIX,
            ));
        }
    }
    Ok(Package::Pip {
        name: name.to_owned(),
        version: version.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_the_three_kinds() {
        assert_eq!(
            Package::parse("ripgrep"),
            Ok(Package::Deb {
                name: "ripgrep".into()
            })
        );
        assert_eq!(
            Package::parse("npm:@anthropic-ai/claude-code@2.1.197"),
            Ok(Package::Npm {
                name: "@anthropic-ai/claude-code".into(),
                version: Some("2.1.197".into())
            })
        );
        assert_eq!(
            Package::parse("npm:typescript"),
            Ok(Package::Npm {
                name: "typescript".into(),
                version: None
            })
        );
        assert_eq!(
            Package::parse("pip:ruff==0.6.9"),
            Ok(Package::Pip {
                name: "ruff".into(),
                version: Some("0.6.9".into())
            })
        );
        assert_eq!(
            Package::parse("pip:ruff==0.6.9")
                .map(|p| p.to_string())
                .as_deref(),
            Ok("pip:ruff==0.6.9")
        );
    }

    #[test]
    fn rejects_malformed_specs() {
        for bad in [
            "npm:",
            "npm:@scope",
            "npm:Bad Name",
            "npm:x@",
            "npm:x@1;rm -rf /",
            "npm:-x",
            "pip:",
            "pip:ruff==",
            "pip:ruff>=1",
            "pip:-r",
            "pip:--index-url=http://x",
            "apt:git",
            "Git",
            "g",
            "--option",
            "a b",
        ] {
            assert!(Package::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        /// Whatever is accepted is one line, has no shell or option syntax, and round-trips.
        #[test]
        fn accepted_specs_are_inert(s in "\\PC{0,40}") {
            if let Ok(p) = Package::parse(&s) {
                let line = p.install_arg();
                prop_assert!(!line.starts_with('-'));
                prop_assert!(!line.contains(|c: char| c.is_whitespace() || "'\"$`;&|<>()\\".contains(c)));
                prop_assert_eq!(Package::parse(&p.to_string()), Ok(p));
            }
        }
    }
}
