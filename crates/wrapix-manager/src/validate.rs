//! A create request to a [`NewSession`], or a refusal naming the field. Pure checks plus the
//! project folder's metadata: nothing is created or written here.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::model::{CreateRequest, Network, NewSession};

/// Why a request was refused; the API maps it to 422 (400 for syntax).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// `[A-Za-z0-9._-]{1,64}`, and not `.` or `..`.
pub fn name(n: &str) -> Result<(), Invalid> {
    let ok_chars = n
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if n.is_empty() || n.len() > 64 || !ok_chars || n == "." || n == ".." {
        return Err(invalid(
            "name: use 1 to 64 characters of A-Z a-z 0-9 . _ - (not \".\" or \"..\")",
        ));
    }
    Ok(())
}

/// The backend's canonical name: `auto`, or one of the sandbox backends (aliases such as the
/// original's `bubblewrap` accepted). `none` (no sandbox) is never accepted here.
pub fn backend(b: Option<&str>) -> Result<String, Invalid> {
    let b = b.unwrap_or("auto");
    if b == "auto" {
        return Ok("auto".into());
    }
    for n in wrapix_sandbox::backend::names() {
        if n.name == b || n.aliases.contains(&b) {
            return Ok(n.name.to_owned());
        }
    }
    let known: Vec<&str> = wrapix_sandbox::backend::names()
        .iter()
        .map(|n| n.name)
        .collect();
    Err(invalid(format!(
        "backend: {b:?} is not a sandbox backend; use auto, {} (or bubblewrap)",
        known.join(", ")
    )))
}

/// `true`/`"open"` → open, `false`/`"none"` → none, absent/null → the project's config.
pub fn network(v: Option<&serde_json::Value>) -> Result<Option<Network>, Invalid> {
    use serde_json::Value;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(Network::Open)),
        Some(Value::Bool(false)) => Ok(Some(Network::None)),
        Some(Value::String(s)) if s == "open" => Ok(Some(Network::Open)),
        Some(Value::String(s)) if s == "none" => Ok(Some(Network::None)),
        Some(_) => Err(invalid(
            "network: use true or \"open\", false or \"none\" (or leave it out for the project's config)",
        )),
    }
}

/// A profile name's syntax (whether it exists is the launcher's check).
pub fn profile(p: Option<&str>) -> Result<Option<String>, Invalid> {
    match p {
        None => Ok(None),
        Some(p) => {
            name(p).map_err(|_| invalid("profile: use 1 to 64 characters of A-Z a-z 0-9 . _ -"))?;
            Ok(Some(p.to_owned()))
        }
    }
}

/// The project folder: absolute, existing, a folder owned by `uid`, and (symlinks followed,
/// then checked) under one of `roots` (themselves resolved). Returns the resolved path.
pub fn project_dir(raw: &str, uid: u32, roots: &[PathBuf]) -> Result<PathBuf, Invalid> {
    if raw.is_empty() || raw.len() > 4096 || raw.contains('\0') {
        return Err(invalid("project_dir: give an absolute path to a folder"));
    }
    let p = Path::new(raw);
    if !p.is_absolute() {
        return Err(invalid(format!(
            "project_dir: {raw:?} is not an absolute path"
        )));
    }
    let resolved = std::fs::canonicalize(p)
        .map_err(|e| invalid(format!("project_dir: {raw:?} does not exist ({e})")))?;
    let under = roots.iter().any(|r| match std::fs::canonicalize(r) {
        Ok(r) => resolved.starts_with(&r),
        Err(_) => false,
    });
    if !under {
        return Err(invalid(format!(
            "project_dir: {} is outside the allowed roots ({}); start the manager with --allow-root DIR to allow more",
            resolved.display(),
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let meta = std::fs::metadata(&resolved)
        .map_err(|e| invalid(format!("project_dir: cannot read {raw:?} ({e})")))?;
    if !meta.is_dir() {
        return Err(invalid(format!("project_dir: {raw:?} is not a folder")));
    }
    if meta.uid() != uid {
        return Err(invalid(format!(
            "project_dir: {} belongs to another user (uid {}), not to the manager's",
            resolved.display(),
            meta.uid()
        )));
    }
    if resolved == Path::new("/") {
        return Err(invalid("project_dir: / is the whole host"));
    }
    Ok(resolved)
}

/// Every check of a create request except the name's uniqueness and the launcher's.
pub fn request(r: &CreateRequest, uid: u32, roots: &[PathBuf]) -> Result<NewSession, Invalid> {
    name(&r.name)?;
    let backend = backend(r.backend.as_deref())?;
    let network = network(r.network.as_ref())?;
    let profile = profile(r.profile.as_deref())?;
    let project_dir = project_dir(&r.project_dir, uid, roots)?;
    Ok(NewSession {
        name: r.name.clone(),
        project_dir,
        backend,
        profile,
        network,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "my-session_1.0", &"x".repeat(64)] {
            assert!(name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a;b",
            "$(id)",
            "a\nb",
            "a b",
            "é",
            "a/b",
            &"x".repeat(65),
            &"x".repeat(200),
        ] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backends_and_networks() {
        assert_eq!(backend(Some("bubblewrap")).unwrap(), "bwrap");
        assert_eq!(backend(Some("bwrap")).unwrap(), "bwrap");
        assert_eq!(backend(None).unwrap(), "auto");
        assert!(backend(Some("none")).is_err());
        assert!(backend(Some("docker")).is_err());
        let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(network(Some(&j("true"))).unwrap(), Some(Network::Open));
        assert_eq!(network(Some(&j("false"))).unwrap(), Some(Network::None));
        assert_eq!(network(Some(&j("\"none\""))).unwrap(), Some(Network::None));
        assert_eq!(network(None).unwrap(), None);
        assert!(network(Some(&j("\"allow\""))).is_err());
        assert!(network(Some(&j("1"))).is_err());
    }

    #[test]
    fn project_dirs() {
        let uid = nix::unistd::getuid().as_raw();
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let inside = root.join("p");
        let outside = t.path().join("out");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let roots = vec![root.clone()];
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        assert_eq!(
            project_dir(&s(&inside), uid, &roots).unwrap(),
            std::fs::canonicalize(&inside).unwrap()
        );
        assert!(project_dir(&s(&outside), uid, &roots).is_err());
        assert!(project_dir(&format!("{}/p/../../out", root.display()), uid, &roots).is_err());
        assert!(project_dir(&s(&root.join("link")), uid, &roots).is_err());
        assert!(project_dir("relative", uid, &roots).is_err());
        assert!(project_dir(&s(&root.join("missing")), uid, &roots).is_err());
        assert!(project_dir(&s(&inside), uid + 1, &roots).is_err());
        std::fs::write(root.join("f"), "").unwrap();
        assert!(project_dir(&s(&root.join("f")), uid, &roots).is_err());
    }
}
