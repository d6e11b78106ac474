//! `wrapix config show`: effective values and where each came from.

use super::harness::Case;

/// The `config show` row for `key`: (value, origin).
fn row<'a>(show: &'a str, key: &str) -> Vec<(&'a str, &'a str)> {
    show.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(' ')?.trim();
            let open = rest.rfind(" (")?;
            Some((rest[..open].trim(), rest[open + 2..].strip_suffix(')')?))
        })
        .collect()
}

#[test]
fn flags_are_shown_with_their_origin() {
    let Some(c) = Case::new() else { return };
    let data = c.root.join("data");
    c.write(&data.join("f"), "x");
    let mount = format!("{}:/data", data.display());
    let out = c.run(&[
        "config",
        "show",
        "--network",
        "none",
        "-e",
        "FOO=bar",
        "--mount",
        &mount,
    ]);
    let show = out.ok();
    assert_eq!(
        row(show, "network"),
        vec![("none", "flag --network")],
        "{out}"
    );
    assert_eq!(row(show, "env"), vec![("FOO=bar", "flag --env")], "{out}");
    let expected = format!("{} -> /data (ro)", data.display());
    assert_eq!(
        row(show, "mount"),
        vec![(expected.as_str(), "flag --mount")],
        "{out}"
    );
    assert_eq!(row(show, "backend"), vec![("auto", "default")], "{out}");
    let project = c.project.display().to_string();
    assert!(
        row(show, "project").iter().any(|(v, _)| *v == project),
        "{out}"
    );
    assert!(
        row(show, "protect")
            .iter()
            .any(|(v, _)| v.contains(".git/hooks")),
        "{out}"
    );
}

#[test]
fn project_config_is_shown_with_the_file_as_origin() {
    let Some(c) = Case::new() else { return };
    let file = c.project.join("wrapix.toml");
    c.write(&file, "network = \"none\"\n\n[env]\nFROM_FILE = \"1\"\n");
    c.trust();
    let origin = file.display().to_string();
    let out = c.run(&["config", "show"]);
    let show = out.ok();
    assert_eq!(
        row(show, "network"),
        vec![("none", origin.as_str())],
        "{out}"
    );
    assert_eq!(
        row(show, "env"),
        vec![("FROM_FILE=1", origin.as_str())],
        "{out}"
    );
    // A flag beats the project config.
    let out = c.run(&["config", "show", "--network", "open"]);
    assert_eq!(
        row(out.ok(), "network"),
        vec![("open", "flag --network")],
        "{out}"
    );
    // And the config is what a run gets.
    let inside = c.sh("echo $FROM_FILE; cat /proc/net/dev | grep -c :");
    assert_eq!(inside.ok(), "1\n1\n", "wrapix.toml not applied:\n{inside}");
}

#[test]
fn user_config_is_below_project_config() {
    let Some(c) = Case::new() else { return };
    let user = c.home.join(".config/wrapix/config.toml");
    c.write(
        &user,
        "network = \"none\"\n[env]\nA = \"user\"\nB = \"user\"\n",
    );
    let project = c.project.join("wrapix.toml");
    c.write(&project, "network = \"open\"\n[env]\nB = \"project\"\n");
    c.trust();
    let out = c.run(&["config", "show"]);
    let show = out.ok();
    let origin = project.display().to_string();
    assert_eq!(
        row(show, "network"),
        vec![("open", origin.as_str())],
        "{out}"
    );
    assert_eq!(
        row(show, "env").first().map(|r| r.0),
        Some("A=user B=project"),
        "{out}"
    );
}
