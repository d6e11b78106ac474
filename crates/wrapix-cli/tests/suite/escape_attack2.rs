//! The second red team's attacks (see escape_attack.rs for the first): each test fails while
//! the attack works. Each has a control that shows what the attack achieves when the same
//! change is made on the host.

use std::path::{Path, PathBuf};

use super::harness::{Backend, Case};

const STOLEN: &str = "wrapix-attack2-outside-secret-91d2";

/// A folder outside the home with a secret in it: what a user config's mount would expose.
fn outside(c: &Case) -> PathBuf {
    let dir = c.root.join("outside");
    c.write(&dir.join("secret.txt"), STOLEN);
    dir
}

/// A user config that mounts `dir` read-write at /stolen (what the agent writes). The podman
/// pass's image profile is kept.
fn evil_user_config(dir: &Path) -> String {
    format!(
        "{}[[mounts]]\nsource = \"{}\"\ndest = \"/stolen\"\nmode = \"rw\"\n",
        super::harness::ESCAPE_PROFILE_CONFIG,
        dir.display()
    )
}

/// The sandbox script that writes `config` as wrapix's user config in the home (= project).
fn plant_config(config: &str) -> String {
    format!(
        "mkdir -p .config/wrapix 2>/dev/null; \
         cat > .config/wrapix/config.toml 2>/dev/null <<'EOF'\n{config}EOF\n\
         [ $? = 0 ] && echo CONFIG-WRITTEN; echo done"
    )
}

/// The home is the project, and the user config there is the podman pass's (or none).
fn home_is_project(c: Case) -> Case {
    c.write(
        &c.project.join(".config/wrapix/config.toml"),
        super::harness::ESCAPE_PROFILE_CONFIG,
    );
    let project = c.project.to_string_lossy().into_owned();
    c.host_env("HOME", &project)
}

/// Attack 1: HOME names the home through a symlink (`/home -> /data/home`, a home moved to a
/// bigger disk; here `homelink -> home`). wrapix canonicalizes the project folder but compares
/// it with HOME as written, so a run in the home does not see that the project contains wrapix's
/// config, state, image store and /etc cache: none of them is protected (and no notice says
/// that the project contains the home). The agent writes the user config, and the next run
/// (of any project) mounts what it asks for.
#[test]
fn escape_attack2_a_home_named_through_a_symlink_leaves_wrapix_config_writable() {
    // Control: the same user config written on the host gives the next run the mount.
    let Some(h) = Case::escape() else { return };
    let dir = outside(&h);
    h.write(
        &h.project.join(".config/wrapix/config.toml"),
        &evil_user_config(&dir),
    );
    let project = h.project.to_string_lossy().into_owned();
    let h = h.host_env("HOME", &project);
    let out = h.sh("cat /stolen/secret.txt");
    assert!(
        out.stdout.contains(STOLEN),
        "control: the mount was not made:\n{out}"
    );

    let Some(c) = Case::escape() else { return };
    let dir = outside(&c);
    let c = home_is_project(c);
    let link = c.root.join("homelink");
    std::os::unix::fs::symlink(&c.project, &link).unwrap();
    c.give(&link);
    let link_s = link.to_string_lossy().into_owned();
    let c = c.host_env("HOME", &link_s);
    let out = c.sh(&plant_config(&evil_user_config(&dir)));
    assert!(out.stdout.contains("done"), "{out}");
    let next = c.sh("cat /stolen/secret.txt");
    assert!(
        !out.stdout.contains("CONFIG-WRITTEN") && !next.stdout.contains(STOLEN),
        "the agent rewrote the user config through the project (HOME={}), and the next run \
         mounted a host folder:\nplant: {out}\nnext run: {next}",
        link.display()
    );
}

/// Attack 2: wrapix protects the config folder it uses in this run
/// (`$XDG_CONFIG_HOME/wrapix`), not the one it uses when the variable is unset. A run in the
/// home with XDG_CONFIG_HOME set (a desktop session, a tool that sets it, a script) leaves
/// `~/.config/wrapix` writable; the user's next run without the variable reads the agent's
/// user config.
#[test]
fn escape_attack2_xdg_config_home_set_once_leaves_the_default_user_config_writable() {
    let Some(c) = Case::escape() else { return };
    let dir = outside(&c);
    let c = home_is_project(c);
    let xdg = c.root.join("xdg-config");
    c.write(
        &xdg.join("wrapix/config.toml"),
        super::harness::ESCAPE_PROFILE_CONFIG,
    );
    let with_xdg = |c: &Case, script: &str| {
        let mut cmd = c.command(&["run", "--", "/bin/sh", "-c", script]);
        cmd.env("XDG_CONFIG_HOME", &xdg);
        super::proc::output(cmd, &c.project, None).unwrap()
    };
    let out = with_xdg(&c, &plant_config(&evil_user_config(&dir)));
    assert!(out.stdout.contains("done"), "{out}");
    let next = c.sh("cat /stolen/secret.txt");
    assert!(
        !out.stdout.contains("CONFIG-WRITTEN") && !next.stdout.contains(STOLEN),
        "a run with XDG_CONFIG_HOME set let the agent write ~/.config/wrapix/config.toml, and \
         the next run without it mounted a host folder:\nplant: {out}\nnext run: {next}"
    );
}

/// Attack 3: the same with XDG_CACHE_HOME and the assembled /etc. An earlier run in the home
/// built `~/.cache/wrapix/etc/<key>`; a run with XDG_CACHE_HOME set leaves it writable, and
/// the agent adds a file (it could change `bash.bashrc`, `profile`, `hosts`, or add
/// `ld.so.preload`). Every later sandbox of every project that uses the default cache runs
/// on the changed /etc: code in another project's sandbox, with that project's files and
/// login.
#[test]
fn escape_attack2_xdg_cache_home_set_once_lets_a_sandbox_poison_every_later_etc() {
    let Some(c) = Case::escape() else { return };
    if c.backend == Backend::Podman {
        super::harness::not_applicable("the assembled /etc is the host profile's (bwrap)");
        return;
    }
    let c = home_is_project(c);
    // Another project of the same user (a folder in the home).
    let other = c.project.join("other");
    c.write(&other.join("a.txt"), "a\n");
    // Control: a normal run builds the cache; a file added to it on the host shows up in
    // /etc of a later sandbox of the other project.
    let out = c.sh("true");
    assert_eq!(out.code, 0, "{out}");
    let cache = c.project.join(".cache/wrapix/etc");
    let keys: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{}: {e}", cache.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(keys.len(), 1, "control: no assembled /etc: {keys:?}");
    let in_other = |c: &Case| {
        let o = other.to_string_lossy().into_owned();
        c.run(&[
            "run",
            "-C",
            &o,
            "--",
            "/bin/sh",
            "-c",
            "cat /etc/wrapix-planted",
        ])
    };
    c.host_as_user(
        "/bin/sh",
        &[
            "-c",
            &format!("echo host > {}/wrapix-planted", keys[0].display()),
        ],
    );
    let seen = in_other(&c);
    assert!(seen.stdout.contains("host"), "control: {seen}");
    c.host_as_user(
        "rm",
        &["-f", &keys[0].join("wrapix-planted").to_string_lossy()],
    );

    // The attack: one run with XDG_CACHE_HOME set.
    let xdg = c.root.join("xdg-cache");
    c.write(&xdg.join("keep"), "");
    let mut cmd = c.command(&[
        "run",
        "--",
        "/bin/sh",
        "-c",
        "for d in .cache/wrapix/etc/*/; do echo agent > \"$d/wrapix-planted\" && echo PLANTED; done; echo done",
    ]);
    cmd.env("XDG_CACHE_HOME", &xdg);
    let out = super::proc::output(cmd, &c.project, None).unwrap();
    assert!(out.stdout.contains("done"), "{out}");
    let seen = in_other(&c);
    assert!(
        !out.stdout.contains("PLANTED") && !seen.stdout.contains("agent"),
        "a sandbox changed the assembled /etc that a later sandbox of another project runs on:\n\
         plant: {out}\nother project: {seen}"
    );
}
