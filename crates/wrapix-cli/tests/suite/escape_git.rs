//! Escape tests for the git tripwire: after a run, git metadata the sandbox could plant where
//! the host's git reads it (a `.git/commondir`, `.git/config.worktree`, a nested repository
//! added as a gitlink, a nested `.git` file) is moved to wrapix's quarantine before the host's
//! next `git status` runs what it configures. Each case has its host-side control: the same
//! files planted without wrapix make `git status` run the marker.

use std::path::{Path, PathBuf};

use super::harness::Case;

/// One way to make the host's `git status` run a command, planted by a shell script run in the
/// project (inside the sandbox, or on the host for the control). `MARKER` in `script` is the
/// host path the command creates.
struct Plant {
    what: &'static str,
    /// Relative to the project: what wrapix must name and move.
    path: &'static str,
    /// Host-side set-up in the repository before the plant (a `git config` of the user's).
    host_config: &'static [&'static str],
    script: &'static str,
}

/// A git config that runs `touch MARKER` through `core.fsmonitor` (a hook command, run with a
/// shell, by `git status` and anything else that refreshes the index).
const EVIL_CONFIG: &str =
    "[core]\n\trepositoryformatversion = 0\n\tfsmonitor = \"touch MARKER; false\"\n";

const GIT: &str = "git -c user.name=t -c user.email=t@e";

const PLANTS: &[Plant] = &[
    Plant {
        what: "commondir to a planted git folder",
        path: ".git/commondir",
        host_config: &[],
        script: "mkdir planted && cp -r .git/objects .git/refs planted/ && \
                 cat > planted/config <<'EOF'\nEVIL_CONFIG\nEOF\n\
                 echo ../planted > .git/commondir",
    },
    Plant {
        what: "a nested repository added as a gitlink",
        path: "sub/.git",
        host_config: &[],
        script: "GIT init -q sub && echo s > sub/s.txt && GIT -C sub add s.txt && \
                 GIT -C sub commit -q -m s && \
                 cat >> sub/.git/config <<'EOF'\nEVIL_CONFIG\nEOF\n\
                 GIT add sub",
    },
    Plant {
        what: "a nested .git file naming a planted git folder",
        path: "sub3/.git",
        host_config: &[],
        script: "mkdir -p sub3 planted3 && cp -r .git/objects .git/refs .git/HEAD planted3/ && \
                 cat > planted3/config <<'EOF'\nEVIL_CONFIG\nEOF\n\
                 echo 'gitdir: ../planted3' > sub3/.git && GIT add sub3",
    },
    Plant {
        what: "config.worktree (the user enabled extensions.worktreeConfig)",
        path: ".git/config.worktree",
        host_config: &["extensions.worktreeConfig", "true"],
        script: "cat > .git/config.worktree <<'EOF'\nEVIL_CONFIG\nEOF",
    },
];

/// A repository with one commit, and the user's `git config` of `plant`.
fn repo(c: &Case, plant: &Plant) {
    c.write(&c.project.join("a.txt"), "a\n");
    c.host_repo(&c.project);
    if let [key, value] = plant.host_config {
        c.host_as_user("git", &["config", key, value]).ok();
    }
}

/// The plant's script, creating `marker`.
fn script(plant: &Plant, marker: &Path) -> String {
    // The placeholders first: the marker's path may hold any letters.
    let config = EVIL_CONFIG.replace("MARKER", &marker.to_string_lossy());
    plant
        .script
        .replace("GIT", GIT)
        .replace("EVIL_CONFIG\n", &config)
}

/// The host's `git status` in the project, as the user.
fn host_git_status(c: &Case) {
    // Its exit code does not matter (a moved `.git` may make it fail); what it runs does.
    let _ = c.host_as_user("git", &["status", "--short"]);
}

/// Whether wrapix's quarantine holds `rel` (the last components of an entry).
fn quarantined(c: &Case, rel: &str) -> bool {
    let quarantine = c.state_dir().join("quarantine");
    Case::listing(&quarantine)
        .iter()
        .any(|e| e.ends_with(rel) || Path::new(e).file_name() == Path::new(rel).file_name())
}

fn marker(c: &Case) -> PathBuf {
    c.root.join("git-ran-the-marker")
}

#[test]
fn armed_git_plants_are_quarantined_before_the_host_git_runs_them() {
    for p in PLANTS {
        // Control: planted on the host without wrapix, the host's git runs the marker.
        let Some(h) = Case::escape() else { return };
        repo(&h, p);
        let planted = h.host_as_user("/bin/sh", &["-c", &script(p, &marker(&h))]);
        planted.ok();
        host_git_status(&h);
        assert!(
            marker(&h).exists(),
            "{}: control: git status did not run the planted command",
            p.what
        );

        let Some(c) = Case::escape() else { return };
        repo(&c, p);
        let out = c.sh(&script(p, &marker(&c)));
        assert_eq!(out.code, 0, "{}: the plant failed inside:\n{out}", p.what);
        assert!(
            out.stderr.contains(p.path),
            "{}: wrapix did not name {}:\n{out}",
            p.what,
            p.path
        );
        host_git_status(&c);
        assert!(
            !marker(&c).exists(),
            "{}: the host's git status ran the planted command:\n{out}",
            p.what
        );
        assert!(
            !c.project.join(p.path).exists(),
            "{}: {} is still in the project:\n{out}",
            p.what,
            p.path
        );
        assert!(
            quarantined(&c, p.path),
            "{}: {} is not in the quarantine: {:?}",
            p.what,
            p.path,
            Case::listing(&c.state_dir())
        );
    }
}

/// A repository the agent creates with nothing in it that git would run (`git init sub2`) is
/// reported and left where it is.
#[test]
fn an_unarmed_nested_repository_is_reported_not_moved() {
    let Some(c) = Case::escape() else { return };
    repo(&c, &PLANTS[0]);
    let out = c.sh("git init -q sub2");
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("sub2"), "not reported:\n{out}");
    assert!(
        c.project.join("sub2/.git/config").is_file(),
        "an unarmed repository was moved:\n{out}"
    );
    let quarantine = c.home.join(".local/state/wrapix/projects");
    let moved: Vec<String> = Case::listing(&quarantine)
        .into_iter()
        .filter(|e| e.contains("quarantine/"))
        .collect();
    assert_eq!(moved, Vec::<String>::new(), "{out}");
}

/// `wrapix run --keep-git-changes`: the user keeps what the run planted; nothing is moved.
#[test]
fn keep_git_changes_moves_nothing() {
    let Some(c) = Case::escape() else { return };
    let p = &PLANTS[0];
    repo(&c, p);
    let out = c.sh_with(&["--keep-git-changes"], &script(p, &marker(&c)));
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(c.project.join(".git/commondir")).unwrap_or_default(),
        "../planted\n",
        "the plant was moved:\n{out}"
    );
    let projects = c.home.join(".local/state/wrapix/projects");
    assert!(
        !Case::listing(&projects)
            .iter()
            .any(|e| e.contains("quarantine/")),
        "something was quarantined:\n{out}"
    );
}
