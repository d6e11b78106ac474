//! The tripwire against real repositories made by real `git`, in temporary folders.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args([
            "-c",
            "protocol.file.allow=always",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A project that is a repository with one commit, and a quarantine folder.
struct Project {
    dir: tempfile::TempDir,
    q: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let p = Project::bare();
        git(p.path(), &["init", "-q"]);
        p.write("README", "hello\n");
        git(p.path(), &["add", "README"]);
        git(p.path(), &["commit", "-qm", "first"]);
        p
    }

    /// A project folder that is not a repository.
    fn bare() -> Project {
        Project {
            dir: tempfile::tempdir().unwrap(),
            q: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn hook(&self, rel: &str) {
        self.write(rel, "#!/bin/sh\ntouch /tmp/pwned\n");
        std::fs::set_permissions(self.path().join(rel), PermissionsExt::from_mode(0o755)).unwrap();
    }

    fn dir(&self) -> Dir {
        Dir::open(self.path()).unwrap()
    }

    fn snapshot(&self) -> Snapshot {
        snapshot(&self.dir()).unwrap()
    }

    fn check(&self, before: &Snapshot) -> Vec<Finding> {
        check(&self.dir(), before).unwrap()
    }

    fn neutralise(&self, before: &Snapshot, findings: &[Finding]) -> Vec<String> {
        neutralise(
            &self.dir(),
            before,
            findings,
            &Dir::open(self.q.path()).unwrap(),
        )
        .unwrap()
    }
}

/// The one finding, with its path, action and a word of its line checked.
fn only(findings: &[Finding], path: &str, action: Action, word: &str) {
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.path, PathBuf::from(path), "{f:?}");
    assert_eq!(f.action, action, "{f:?}");
    assert!(f.what.contains(word), "{:?} lacks {word:?}", f.what);
}

#[test]
fn ordinary_git_work_is_not_a_finding() {
    let p = Project::new();
    let before = p.snapshot();
    p.write("src/main.rs", "fn main() {}\n");
    git(p.path(), &["add", "-A"]);
    git(p.path(), &["commit", "-qm", "work"]);
    git(p.path(), &["checkout", "-qb", "feature"]);
    p.write(".git/hooks/new.sample", "# a sample is never run\n");
    std::fs::remove_file(p.path().join(".git/hooks/pre-push.sample")).unwrap();
    assert_eq!(p.check(&before), vec![]);
}

#[test]
fn new_pointers_and_hooks_in_the_top_git_are_quarantined() {
    for (rel, word) in [
        (".git/commondir", "takes config and hooks"),
        (".git/config.worktree", "per-worktree"),
        (".git/gitdir", "points git at"),
        (".git/hooks/pre-commit", "git runs"),
        (".git/modules/lib/config", "git config"),
        (".git/modules/lib/hooks/post-checkout", "git runs"),
        (".git/worktrees/w/modules/x/commondir", "takes config"),
    ] {
        let p = Project::new();
        let before = p.snapshot();
        p.hook(rel);
        // Inert parts of a submodule's git folder are never looked at.
        p.write(".git/modules/lib/objects/config", "x");
        let findings = p.check(&before);
        only(&findings, rel, Action::Quarantine, word);
        let lines = p.neutralise(&before, &findings);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains(&p.q.path().join(rel).display().to_string()),
            "{lines:?}"
        );
        assert!(!p.path().join(rel).exists());
        assert!(p.q.path().join(rel).is_file(), "{rel}");
    }
}

#[test]
fn a_changed_config_is_put_back_and_git_no_longer_runs_it() {
    let p = Project::new();
    let before = p.snapshot();
    let old = std::fs::read(p.path().join(".git/config")).unwrap();
    let marker = p.path().join("../fsmonitor-ran");
    let script = p.q.path().join("fsmon");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&script, PermissionsExt::from_mode(0o755)).unwrap();
    git(
        p.path(),
        &["config", "core.fsmonitor", script.to_str().unwrap()],
    );
    let findings = p.check(&before);
    only(
        &findings,
        ".git/config",
        Action::Restore,
        "sets core.fsmonitor",
    );
    let lines = p.neutralise(&before, &findings);
    assert!(lines[0].starts_with("put back"), "{lines:?}");
    assert_eq!(std::fs::read(p.path().join(".git/config")).unwrap(), old);
    let agents = std::fs::read_to_string(p.q.path().join(".git/config")).unwrap();
    assert!(agents.contains("fsmonitor"));
    git(p.path(), &["status", "--short"]);
    assert!(!marker.exists(), "fsmonitor ran");
    assert_eq!(p.check(&before), vec![]);
}

#[test]
fn an_unarmed_new_clone_is_only_reported() {
    let p = Project::new();
    let upstream = tempfile::tempdir().unwrap();
    git(upstream.path(), &["init", "-q"]);
    std::fs::write(upstream.path().join("f"), "f").unwrap();
    git(upstream.path(), &["add", "f"]);
    git(upstream.path(), &["commit", "-qm", "x"]);
    let before = p.snapshot();
    let url = upstream.path().to_str().unwrap();
    git(p.path(), &["clone", "-q", url, "vendor/lib"]);
    git(p.path(), &["init", "-q", "scratch"]);
    let findings = p.check(&before);
    assert_eq!(findings.len(), 2, "{findings:#?}");
    for (f, path) in findings.iter().zip(["scratch/.git", "vendor/lib/.git"]) {
        assert_eq!(f.path, PathBuf::from(path));
        assert_eq!(f.action, Action::Report);
        assert!(f.what.contains("nothing in it runs code"), "{f:?}");
    }
    assert_eq!(p.neutralise(&before, &findings), Vec::<String>::new());
    assert!(p.path().join("vendor/lib/.git/config").is_file());
}

#[test]
fn an_armed_nested_repository_is_quarantined_whole() {
    for arm in ["fsmonitor", "hook", "commondir", "include"] {
        let p = Project::new();
        let before = p.snapshot();
        git(p.path(), &["init", "-q", "deep/sub"]);
        p.write("deep/sub/f", "f");
        git(&p.path().join("deep/sub"), &["add", "f"]);
        git(&p.path().join("deep/sub"), &["commit", "-qm", "x"]);
        git(p.path(), &["add", "deep/sub"]);
        match arm {
            "fsmonitor" => git(
                &p.path().join("deep/sub"),
                &["config", "core.fsMonitor", "/x"],
            ),
            "hook" => p.hook("deep/sub/.git/hooks/post-index-change"),
            "commondir" => p.write("deep/sub/.git/commondir", "/tmp/planted\n"),
            _ => git(
                &p.path().join("deep/sub"),
                &["config", "include.path", "/tmp/c"],
            ),
        }
        let findings = p.check(&before);
        assert_eq!(findings.len(), 2, "{arm}: {findings:#?}");
        let gitlink = findings
            .iter()
            .find(|f| f.path == Path::new("deep/sub"))
            .unwrap();
        assert_eq!(gitlink.action, Action::Report);
        assert!(gitlink.what.contains("gitlink"));
        let repo = findings
            .iter()
            .find(|f| f.path == Path::new("deep/sub/.git"))
            .unwrap();
        assert_eq!(repo.action, Action::Quarantine, "{arm}: {repo:?}");
        assert!(repo.what.starts_with("new nested repository"), "{repo:?}");
        let word = if arm == "include" {
            "include.path"
        } else {
            arm
        };
        assert!(repo.what.to_lowercase().contains(word), "{repo:?}");
        let lines = p.neutralise(&before, &findings);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(!p.path().join("deep/sub/.git").exists());
        assert!(
            p.path().join("deep/sub/f").exists(),
            "the work tree is the user's"
        );
        assert!(p.q.path().join("deep/sub/.git/HEAD").is_file());
    }
}

#[test]
fn nested_git_files_and_symlinks_are_quarantined_without_being_followed() {
    let p = Project::new();
    let before = p.snapshot();
    p.write("a/.git", "gitdir: /tmp/planted\n");
    std::fs::create_dir_all(p.path().join("b")).unwrap();
    symlink("/etc", p.path().join("b/.git")).unwrap();
    let findings = p.check(&before);
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert_eq!(findings[0].path, PathBuf::from("a/.git"));
    assert!(
        findings[0].what.contains("gitdir: /tmp/planted"),
        "{:?}",
        findings[0]
    );
    assert_eq!(findings[1].path, PathBuf::from("b/.git"));
    assert!(
        findings[1].what.contains("symbolic link to /etc"),
        "{:?}",
        findings[1]
    );
    assert!(findings.iter().all(|f| f.action == Action::Quarantine));
    p.neutralise(&before, &findings);
    assert!(p.q.path().join("b/.git").is_symlink());
    assert!(Path::new("/etc/passwd").exists());
    assert!(p.q.path().join("a/.git").is_file());
}

#[test]
fn a_top_level_git_symlink_is_a_finding_not_an_error() {
    let p = Project::bare();
    p.write("src/x", "x");
    let before = p.snapshot();
    symlink("/etc", p.path().join(".git")).unwrap();
    let findings = p.check(&before);
    only(
        &findings,
        ".git",
        Action::Quarantine,
        "symbolic link to /etc",
    );
    p.neutralise(&before, &findings);
    assert!(!p.path().join(".git").is_symlink());
}

#[test]
fn a_symlinked_folder_on_the_way_is_not_entered() {
    let p = Project::new();
    let outside = tempfile::tempdir().unwrap();
    git(outside.path(), &["init", "-q", "r"]);
    git(
        &outside.path().join("r"),
        &["config", "core.fsmonitor", "/x"],
    );
    let before = p.snapshot();
    symlink(outside.path(), p.path().join("link")).unwrap();
    assert_eq!(p.check(&before), vec![]);
}

#[test]
fn changes_to_an_existing_nested_repository() {
    let p = Project::new();
    git(p.path(), &["init", "-q", "sub"]);
    let before = p.snapshot();
    assert_eq!(before.repositories(), 2);
    git(&p.path().join("sub"), &["config", "core.fsmonitor", "/x"]);
    p.hook("sub/.git/hooks/pre-commit");
    let findings = p.check(&before);
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert_eq!(findings[0].path, PathBuf::from("sub/.git/config"));
    assert_eq!(findings[0].action, Action::Restore);
    assert!(findings[0].what.contains("nested"), "{:?}", findings[0]);
    assert_eq!(findings[1].path, PathBuf::from("sub/.git/hooks/pre-commit"));
    assert_eq!(findings[1].action, Action::Quarantine);
    p.neutralise(&before, &findings);
    assert_eq!(p.check(&before), vec![]);
}

#[test]
fn a_changed_top_level_git_file_is_put_back() {
    let p = Project::bare();
    p.write(".git", "gitdir: /home/u/main/.git/worktrees/w\n");
    let before = p.snapshot();
    p.write(".git", "gitdir: /tmp/planted\n");
    let findings = p.check(&before);
    only(&findings, ".git", Action::Restore, "/tmp/planted");
    p.neutralise(&before, &findings);
    assert_eq!(
        std::fs::read_to_string(p.path().join(".git")).unwrap(),
        "gitdir: /home/u/main/.git/worktrees/w\n"
    );
}

#[test]
fn a_garbage_index_is_reported() {
    let p = Project::new();
    let before = p.snapshot();
    p.write(".git/index", "DIRC\0\0\0\x02\0\0\0\x09garbage");
    only(
        &p.check(&before),
        ".git/index",
        Action::Report,
        "could not read the index",
    );
}

#[test]
fn quarantine_on_another_filesystem_renames_in_place() {
    let p = Project::new();
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("SKIP: no /dev/shm");
        return;
    };
    let before = p.snapshot();
    p.hook(".git/hooks/pre-commit");
    let findings = p.check(&before);
    let lines = neutralise(
        &p.dir(),
        &before,
        &findings,
        &Dir::open(shm.path()).unwrap(),
    )
    .unwrap();
    if shm.path().join(".git/hooks/pre-commit").exists() {
        eprintln!("SKIP: /dev/shm is on the same filesystem as the temporary folder");
        return;
    }
    assert!(lines[0].contains("renamed in place"), "{lines:?}");
    assert!(lines[0].contains("another filesystem"), "{lines:?}");
    let hooks = std::fs::read_dir(p.path().join(".git/hooks")).unwrap();
    let names: Vec<String> = hooks
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.contains(&"pre-commit".to_owned()));
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("pre-commit.wrapix-quarantined-")),
        "{names:?}"
    );
}
