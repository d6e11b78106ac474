//! Small value types that can only hold valid values.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::problem::{
    EnvFlagError, EnvNameError, EnvValueError, KeyNameError, MountFlagError, MountModeError,
    ProjectPathError, SandboxPathError,
};

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvName(String);

impl EnvName {
    pub fn parse(name: &str) -> Result<Self, EnvNameError> {
        let mut chars = name.chars();
        let ok_first = matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic());
        if name.contains('\0') {
            return Err(EnvNameError::Nul(name.to_owned()));
        }
        if name.contains('=') {
            return Err(EnvNameError::Equals(name.to_owned()));
        }
        if !ok_first || !chars.all(|c| c == '_' || c.is_ascii_alphanumeric()) {
            return Err(EnvNameError::Invalid(name.to_owned()));
        }
        Ok(EnvName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks an environment value: anything but NUL.
pub fn check_env_value(value: &str) -> Result<(), EnvValueError> {
    if value.contains('\0') {
        Err(EnvValueError)
    } else {
        Ok(())
    }
}

/// Splits a `KEY=VALUE` flag.
pub fn split_env_flag(s: &str) -> Result<(&str, &str), EnvFlagError> {
    s.split_once('=').ok_or_else(|| EnvFlagError(s.to_owned()))
}

/// A deploy key name: a plain file name under `~/.ssh/deploy_keys/`. The one check, for the
/// config's `deploy_key` and for `wrapix deploy-key create`.
pub fn check_key_name(name: &str) -> Result<(), KeyNameError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(KeyNameError(name.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MountMode {
    ReadOnly,
    ReadWrite,
}

impl MountMode {
    pub fn parse(s: &str) -> Result<Self, MountModeError> {
        match s {
            "ro" => Ok(MountMode::ReadOnly),
            "rw" => Ok(MountMode::ReadWrite),
            other => Err(MountModeError(other.to_owned())),
        }
    }
}

impl fmt::Display for MountMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MountMode::ReadOnly => "ro",
            MountMode::ReadWrite => "rw",
        })
    }
}

/// The parts of a `SRC:DEST[:ro|rw]` flag. The mode defaults to `ro`.
pub fn split_mount_flag(s: &str) -> Result<(&str, &str, MountMode), MountFlagError> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [src, dest] if !src.is_empty() && !dest.is_empty() => Ok((src, dest, MountMode::ReadOnly)),
        [src, dest, mode] if !src.is_empty() && !dest.is_empty() => {
            Ok((src, dest, MountMode::parse(mode)?))
        }
        _ => Err(MountFlagError::Shape(s.to_owned())),
    }
}

/// An absolute, normalised path inside the sandbox (no `.`, `..` or empty components).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SandboxPath(PathBuf);

impl SandboxPath {
    /// Parses an absolute path or `~`/`~/…` (relative to `home`, the sandbox user's home).
    pub fn parse(s: &str, home: &SandboxPath) -> Result<Self, SandboxPathError> {
        if s.contains('\0') {
            return Err(SandboxPathError::Nul);
        }
        let path = if s == "~" {
            home.0.clone()
        } else if let Some(rest) = s.strip_prefix("~/") {
            home.0.join(rest)
        } else if s.starts_with('/') {
            PathBuf::from(s)
        } else {
            return Err(SandboxPathError::Relative(s.to_owned()));
        };
        Self::normalise(&path).ok_or_else(|| SandboxPathError::Parent(s.to_owned()))
    }

    /// A path we build ourselves; must be absolute and normal.
    pub fn from_static(s: &str) -> Self {
        SandboxPath(PathBuf::from(s))
    }

    fn normalise(path: &Path) -> Option<Self> {
        let mut out = PathBuf::from("/");
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(n) => out.push(n),
                Component::ParentDir | Component::Prefix(_) => return None,
            }
        }
        Some(SandboxPath(out))
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, rel: &str) -> SandboxPath {
        SandboxPath(self.0.join(rel))
    }

    /// True when `self` is `other` or lies below it.
    pub fn is_within(&self, other: &SandboxPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for SandboxPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// A relative path inside the project, without `..`: used by `[workspace] protect`.
pub fn parse_project_relative(s: &str) -> Result<PathBuf, ProjectPathError> {
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') || s.contains('\0') {
        return Err(ProjectPathError::NotRelative(s.to_owned()));
    }
    let mut out = PathBuf::new();
    for c in Path::new(trimmed).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(ProjectPathError::Leaves(s.to_owned())),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(ProjectPathError::Project(s.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn home() -> SandboxPath {
        SandboxPath::from_static("/home/u")
    }

    #[test]
    fn env_names() {
        assert!(EnvName::parse("FOO_1").is_ok());
        assert!(EnvName::parse("_x").is_ok());
        assert!(EnvName::parse("1X").is_err());
        assert!(EnvName::parse("A=B").is_err());
        assert!(EnvName::parse("A\0").is_err());
        assert!(EnvName::parse("").is_err());
        assert!(EnvName::parse("A-B").is_err());
    }

    #[test]
    fn mount_flags() {
        assert_eq!(
            split_mount_flag("/a:/b"),
            Ok(("/a", "/b", MountMode::ReadOnly))
        );
        assert_eq!(
            split_mount_flag("~/a:~/b:rw"),
            Ok(("~/a", "~/b", MountMode::ReadWrite))
        );
        assert!(split_mount_flag("/a").is_err());
        assert!(split_mount_flag("/a:/b:rx").is_err());
        assert!(split_mount_flag(":/b").is_err());
        assert!(split_mount_flag("/a:/b:ro:x").is_err());
    }

    #[test]
    fn sandbox_paths() {
        let h = home();
        assert_eq!(
            SandboxPath::parse("~/.cargo", &h).map(|p| p.to_string()),
            Ok("/home/u/.cargo".into())
        );
        assert_eq!(
            SandboxPath::parse("~", &h).map(|p| p.to_string()),
            Ok("/home/u".into())
        );
        assert_eq!(
            SandboxPath::parse("/a/./b//c/", &h).map(|p| p.to_string()),
            Ok("/a/b/c".into())
        );
        assert!(SandboxPath::parse("a/b", &h).is_err());
        assert!(SandboxPath::parse("/a/../etc", &h).is_err());
        assert!(SandboxPath::parse("~user/x", &h).is_err());
    }

    #[test]
    fn project_relative() {
        assert_eq!(
            parse_project_relative(".vscode/"),
            Ok(PathBuf::from(".vscode"))
        );
        assert!(parse_project_relative("../x").is_err());
        assert!(parse_project_relative("/etc").is_err());
        assert!(parse_project_relative(".").is_err());
    }

    proptest! {
        #[test]
        fn env_name_roundtrip(s in "\\PC*") {
            if let Ok(n) = EnvName::parse(&s) {
                prop_assert!(!n.as_str().contains('='));
                prop_assert!(!n.as_str().contains('\0'));
                prop_assert!(!n.as_str().is_empty());
            }
        }

        #[test]
        fn env_flag_splits_at_first_equals(k in "[A-Z_][A-Z0-9_]{0,8}", v in "\\PC*") {
            let flag = format!("{k}={v}");
            prop_assert_eq!(split_env_flag(&flag), Ok((k.as_str(), v.as_str())));
        }

        #[test]
        fn sandbox_path_never_escapes(s in "[~/a-z.]{0,20}") {
            if let Ok(p) = SandboxPath::parse(&s, &home()) {
                prop_assert!(p.as_path().is_absolute());
                prop_assert!(!p.as_path().components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)));
            }
        }

        #[test]
        fn mount_flag_parts_have_no_colon(s in "[a-z/:~]{0,20}") {
            if let Ok((src, dest, _)) = split_mount_flag(&s) {
                prop_assert!(!src.contains(':') && !dest.contains(':'));
                prop_assert!(!src.is_empty() && !dest.is_empty());
            }
        }
    }
}
