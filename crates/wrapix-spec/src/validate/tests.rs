use std::path::Path;

use super::*;
use crate::layer::{FileKind, Overrides};
use crate::spec::Network;

struct Fixture {
    dir: tempfile::TempDir,
    /// Whether the user trusted the project file's content (most tests: yes).
    trusted: bool,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::create_dir_all(dir.path().join("home/.ssh/deploy_keys"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("project")).unwrap_or_else(|e| panic!("{e}"));
        Fixture { dir, trusted: true }
    }

    fn untrusted() -> Self {
        Fixture {
            trusted: false,
            ..Self::new()
        }
    }

    fn host(&self) -> HostContext {
        HostContext {
            user: HostUser {
                uid: 1000,
                gid: 1000,
                name: "u".into(),
                home: self.dir.path().join("home"),
            },
            project: self.dir.path().join("project"),
            cwd: self.dir.path().to_owned(),
            trusted: None,
            backends: vec![
                BackendName {
                    name: "bwrap",
                    aliases: &["bubblewrap"],
                },
                BackendName {
                    name: "podman",
                    aliases: &[],
                },
            ],
        }
    }

    fn run(
        &self,
        user: Option<&str>,
        project: Option<&str>,
        flags: Overrides,
    ) -> Result<Spec, String> {
        let parse = |text: &str, kind| {
            ConfigFile::parse(
                Path::new(if kind == FileKind::User {
                    "config.toml"
                } else {
                    "wrapix.toml"
                }),
                text.to_owned(),
                kind,
            )
        };
        let layers = Layers {
            user: user
                .map(|t| parse(t, FileKind::User))
                .transpose()
                .map_err(|e| e.to_string())?,
            project: project
                .map(|t| parse(t, FileKind::Project))
                .transpose()
                .map_err(|e| e.to_string())?,
            flags,
        };
        let mut host = self.host();
        if self.trusted {
            host.trusted = layers.project.as_ref().map(|p| p.sha256.clone());
        }
        validate(&layers, &host).map_err(|e| e.to_string())
    }
}

#[test]
fn defaults() {
    let f = Fixture::new();
    let spec = f
        .run(None, None, Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.network, Network::Open);
    assert_eq!(spec.backend, BackendKind::Auto);
    assert_eq!(spec.profile, Profile::Host);
    assert_eq!(spec.agent.home, AgentHome::Project);
    assert!(spec.agent.is_claude());
    let protect: Vec<PathBuf> = DEFAULT_PROTECT.iter().map(PathBuf::from).collect();
    assert_eq!(spec.protect, protect);
    assert!(spec.protect.contains(&PathBuf::from("wrapix.toml")));
    assert!(spec.protect.contains(&PathBuf::from(".git/modules")));
    assert_eq!(spec.origin("network"), &Origin::Default);
}

#[test]
fn flag_beats_project_beats_user() {
    let f = Fixture::new();
    let user = "network = \"none\"\nbackend = \"bwrap\"\n[env]\nA = \"user\"\nB = \"user\"\n";
    let project = "network = \"open\"\n[env]\nB = \"project\"\n";
    let spec = f
        .run(Some(user), Some(project), Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.network, Network::Open);
    assert_eq!(
        spec.origin("network"),
        &Origin::Project("wrapix.toml".into())
    );
    assert_eq!(spec.backend, BackendKind::Named("bwrap"));
    let env: Vec<_> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(env, ["A=user", "B=project"]);

    let flags = Overrides {
        network: Some("none".into()),
        env: vec!["B=flag".into()],
        ..Default::default()
    };
    let spec = f
        .run(Some(user), Some(project), flags)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.network, Network::None);
    assert_eq!(spec.origin("network"), &Origin::Flag("--network"));
    assert_eq!(
        spec.env
            .get(&EnvName::parse("B").unwrap_or_else(|e| panic!("{e}")))
            .map(String::as_str),
        Some("flag")
    );
}

#[test]
fn mounts_resolve_and_check() {
    let f = Fixture::new();
    std::fs::write(f.dir.path().join("home/cfg"), "x").unwrap_or_else(|e| panic!("{e}"));
    let project = "[[mounts]]\nsource = \"~/cfg\"\ndest = \"~/.cfg\"\nmode = \"rw\"\n";
    let spec = f
        .run(None, Some(project), Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.mounts.len(), 1);
    assert_eq!(spec.mounts[0].dest.to_string(), "/home/u/.cfg");
    assert_eq!(spec.mounts[0].mode, MountMode::ReadWrite);
    assert!(spec.mounts[0].source.ends_with("home/cfg"));
}

#[test]
fn bad_input_table() {
    let f = Fixture::new();
    let cases: &[(&str, &str)] = &[
        (
            "[[mounts]]\nsource = \"/nonexistent-wrapix\"\ndest = \"/x\"\n",
            "wrapix.toml:2:10: key `mounts[0].source`: source /nonexistent-wrapix does not exist",
        ),
        (
            "[[mounts]]\nsource = \"/tmp\"\ndest = \"x\"\n",
            "wrapix.toml:3:8: key `mounts[0].dest`: \"x\" is relative",
        ),
        (
            "[[mounts]]\nsource = \"/tmp\"\ndest = \"/workspace/sub\"\n",
            "would shadow /workspace",
        ),
        (
            "[[mounts]]\nsource = \"/tmp\"\ndest = \"/\"\n",
            "would replace the whole sandbox",
        ),
        (
            "[[mounts]]\nsource = \"/tmp\"\ndest = \"/usr\"\n",
            "would replace the system folder /usr",
        ),
        (
            "[[mounts]]\nsource = \"/tmp\"\ndest = \"/proc/x\"\n",
            "would shadow /proc",
        ),
        (
            "[[mounts]]\nsource = \"/tmp\"\ndest = \"/x\"\nmode = \"rx\"\n",
            "key `mounts[0].mode`",
        ),
        (
            "[env]\n\"A=B\" = \"x\"\n",
            "key `env.A=B`: environment variable name \"A=B\" contains `=`",
        ),
        ("[env]\n\"A\\u0000\" = \"x\"\n", "contains a NUL byte"),
        (
            "[env]\nA = \"x\\u0000\"\n",
            "key `env.A`: the value contains a NUL byte",
        ),
        (
            "backend = \"docker\"\n",
            "wrapix.toml:1:11: key `backend`: unknown backend \"docker\"",
        ),
        (
            "profile = \"nope\"\n",
            "key `profile`: unknown profile \"nope\"",
        ),
        (
            "network = \"maybe\"\n",
            "key `network`: unknown network policy",
        ),
        (
            "deploy_key = \"../x\"\n",
            "key `deploy_key`: deploy key name",
        ),
        (
            // The name `wrapix deploy-key create` would refuse: one check for both.
            "deploy_key = \"k23456789012345678901234567890123456789012345678901234567890123456\"\n",
            "key `deploy_key`: deploy key name",
        ),
        (
            "deploy_key = \"missing\"\n",
            "wrapix deploy-key create missing",
        ),
        (
            "[agent]\ncommand = []\n",
            "key `agent.command`: the agent command is empty",
        ),
        ("[agent]\nhome = \"cloud\"\n", "key `agent.home`"),
        (
            "[workspace]\nprotect = [\"../x\"]\n",
            "key `workspace.protect`",
        ),
        ("profile = 3\n", "invalid type"),
        ("frobnicate = true\n", "key `frobnicate`: unknown field"),
    ];
    for (text, want) in cases {
        let got = f
            .run(None, Some(text), Overrides::default())
            .err()
            .unwrap_or_default();
        assert!(
            got.contains(want),
            "config {text:?}\n  got:  {got}\n  want: {want}"
        );
        assert!(got.contains("(fix: "), "no fix in {got}");
        assert_eq!(got.lines().count(), 1, "not one line: {got}");
    }
}

#[test]
fn bad_flags() {
    let f = Fixture::new();
    let cases: Vec<(Overrides, &str)> = vec![
        (
            Overrides {
                mounts: vec!["/tmp".into()],
                ..Default::default()
            },
            "--mount \"/tmp\": key `mount`",
        ),
        (
            Overrides {
                mounts: vec!["/tmp:rel".into()],
                ..Default::default()
            },
            "is relative",
        ),
        (
            Overrides {
                mounts: vec!["/tmp:/workspace".into()],
                ..Default::default()
            },
            "would shadow /workspace",
        ),
        (
            Overrides {
                mounts: vec!["/tmp:/a".into(), "/tmp:/a".into()],
                ..Default::default()
            },
            "already used",
        ),
        (
            Overrides {
                env: vec!["NOEQUALS".into()],
                ..Default::default()
            },
            "has no `=`",
        ),
        (
            Overrides {
                env: vec!["1A=x".into()],
                ..Default::default()
            },
            "not a valid environment variable name",
        ),
        (
            Overrides {
                backend: Some("qemu".into()),
                ..Default::default()
            },
            "--backend: key `backend`: backend \"qemu\" is not in this build of wrapix (bubblewrap, podman, nspawn and qemu are Linux-only",
        ),
        (
            Overrides {
                profile: Some("rustt".into()),
                ..Default::default()
            },
            "--profile: key `profile`: unknown profile \"rustt\"",
        ),
    ];
    for (flags, want) in cases {
        let got = f.run(None, None, flags).err().unwrap_or_default();
        assert!(got.contains(want), "got: {got}\nwant: {want}");
    }
}

#[test]
fn protect_adds_to_the_built_in_list_and_unprotect_needs_trust() {
    let builtin = DEFAULT_PROTECT.len();
    let f = Fixture::untrusted();
    // An empty list removes nothing: `protect` only adds.
    let spec = f
        .run(
            None,
            Some("[workspace]\nprotect = []\n"),
            Overrides::default(),
        )
        .unwrap();
    assert_eq!(spec.protect.len(), builtin);
    let spec = f
        .run(
            None,
            Some("[workspace]\nprotect = [\".git/hooks\", \"secrets.env\", \"Makefile\"]\n"),
            Overrides::default(),
        )
        .unwrap();
    assert_eq!(spec.protect.len(), builtin + 2);
    // Removing a built-in path widens: refused until trusted, then done.
    let text = "[workspace]\nunprotect = [\".git/hooks\"]\n";
    let e = f.run(None, Some(text), Overrides::default()).unwrap_err();
    assert!(
        e.contains("workspace.unprotect") && e.contains("wrapix trust"),
        "{e}"
    );
    let spec = Fixture::new()
        .run(None, Some(text), Overrides::default())
        .unwrap();
    assert!(!spec.protect.contains(&PathBuf::from(".git/hooks")));
    assert_eq!(spec.protect.len(), builtin - 1);
    // The user's own config may unprotect without trust.
    let spec = f.run(Some(text), None, Overrides::default()).unwrap();
    assert_eq!(spec.protect.len(), builtin - 1);
}

#[test]
fn an_untrusted_project_file_may_narrow_but_not_widen() {
    let f = Fixture::untrusted();
    let spec = f
        .run(
            None,
            Some("network = \"none\"\nprofile = \"host\"\n[resources]\npids = 100\n"),
            Overrides::default(),
        )
        .unwrap();
    assert_eq!(spec.network, Network::None);
    for (text, key) in [
        (
            "[[mounts]]\nsource = \"~\"\ndest = \"/h\"\nmode = \"rw\"\n",
            "mounts",
        ),
        ("[agent]\nhome = \"host\"\n", "agent.home"),
        ("[agent]\nforward_api_key = true\n", "agent.forward_api_key"),
        (
            "[agent]\ncommand = [\"/workspace/claude\"]\n",
            "agent.command",
        ),
        (
            "[env]\nANTHROPIC_BASE_URL = \"http://x\"\n",
            "env.ANTHROPIC_BASE_URL",
        ),
        ("profile = \"base\"\npackages = [\"sl\"]\n", "packages"),
    ] {
        let e = f.run(None, Some(text), Overrides::default()).unwrap_err();
        assert!(e.contains(key), "{text}: {e}");
        assert!(e.contains("is not trusted"), "{e}");
    }
    // The same in the user's own config needs no trust.
    assert!(f
        .run(
            Some("[agent]\nforward_api_key = true\n"),
            None,
            Overrides::default()
        )
        .is_ok());
}

#[test]
fn trust_is_for_the_exact_content() {
    let f = Fixture::new();
    let text = "[agent]\nforward_api_key = true\n";
    let parse = |t: &str| {
        ConfigFile::parse(Path::new("wrapix.toml"), t.to_owned(), FileKind::Project).unwrap()
    };
    let mut host = f.host();
    host.trusted = Some(parse(text).sha256);
    let layers = |t: &str| Layers {
        user: None,
        project: Some(parse(t)),
        flags: Overrides::default(),
    };
    assert!(validate(&layers(text), &host).is_ok());
    // One byte more: refused again, and the message says it changed.
    let e = validate(&layers(&format!("{text} ")), &host)
        .unwrap_err()
        .to_string();
    assert!(e.contains("changed since you trusted it"), "{e}");
}

#[test]
fn backend_none_never_comes_from_a_project_file() {
    // Trusted or not.
    for f in [Fixture::new(), Fixture::untrusted()] {
        let e = f
            .run(None, Some("backend = \"none\"\n"), Overrides::default())
            .unwrap_err();
        assert!(
            e.contains("key `backend`") && e.contains("never taken"),
            "{e}"
        );
    }
    // From the user's config or a flag it is the user's choice.
    let f = Fixture::untrusted();
    let spec = f
        .run(Some("backend = \"none\"\n"), None, Overrides::default())
        .unwrap();
    assert_eq!(spec.backend, BackendKind::None);
}

#[test]
fn image_profiles_resolve_with_extra_packages_and_env() {
    let f = Fixture::new();
    let spec = f
        .run(
            Some("[profiles.mine]\nextends = \"rust\"\npackages = [\"sqlite3\", \"npm:typescript@5.6.3\"]\nenv = { EDITOR = \"vim\", A = \"profile\" }\n"),
            Some("profile = \"mine\"\npackages = [\"pip:ruff==0.6.9\"]\n[env]\nA = \"config\"\n"),
            Overrides {
                backend: Some("podman".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.backend, BackendKind::Named("podman"));
    let Profile::Image(img) = &spec.profile else {
        panic!("not an image: {:?}", spec.profile)
    };
    assert_eq!(img.profile, "mine");
    let debs = img.debs();
    for want in ["git", "cargo", "sqlite3", "nodejs", "python3-pip"] {
        assert!(
            debs.iter().any(|d| d == want),
            "{want} missing from {debs:?}"
        );
    }
    assert_eq!(img.pips(), vec!["ruff==0.6.9".to_owned()]);
    let env: BTreeMap<String, String> = spec
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(env.get("EDITOR").map(String::as_str), Some("vim"));
    assert_eq!(
        env.get("A").map(String::as_str),
        Some("config"),
        "[env] wins over the profile"
    );
}

#[test]
fn bad_profiles_and_packages_name_file_line_key_and_fix() {
    let f = Fixture::new();
    let cases: &[(&str, &str)] = &[
        (
            "profile = \"nope\"\n",
            "wrapix.toml:1:11: key `profile`: unknown profile \"nope\"",
        ),
        (
            "profile = \"a\"\n[profiles.a]\nextends = \"b\"\n[profiles.b]\nextends = \"a\"\n",
            "profiles extend each other in a cycle: a -> b -> a",
        ),
        (
            "profile = \"a\"\n[profiles.a]\nextends = \"bsae\"\n",
            "wrapix.toml:3:11: key `extends`: unknown profile \"bsae\"",
        ),
        (
            "profile = \"base\"\npackages = [\"npm:Bad Name\"]\n",
            "wrapix.toml:2:13: key `packages`: \"npm:Bad Name\" is not a valid npm package name",
        ),
        (
            "profile = \"base\"\npackages = [\"pip:ruff>=1\"]\n",
            "key `packages`: \"pip:ruff>=1\" has an invalid version",
        ),
        ("packages = [\"git\"]\n", "extra packages need an image"),
        (
            "[profiles.base]\npackages = []\n",
            "built-in profile and cannot be redefined",
        ),
        (
            "profile = \"h\"\n[profiles.h]\nextends = \"host\"\n",
            "cannot be extended",
        ),
        (
            "[resources]\nmemory_mb = 0\n",
            "key `resources.memory_mb`: 0 is out of range",
        ),
    ];
    for (project, want) in cases {
        let got = f
            .run(None, Some(project), Overrides::default())
            .err()
            .unwrap_or_default();
        assert!(
            got.contains(want),
            "config:\n{project}\ngot: {got}\nwant: {want}"
        );
        assert!(
            got.contains("fix:") || got.contains(" — ") || got.lines().count() <= 2,
            "{got}"
        );
    }
    let spec = f
        .run(
            None,
            Some("[resources]\ncpus = 2\nmemory_mb = 4096\npids = 512\n"),
            Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        spec.resources,
        crate::Resources {
            cpus: Some(2),
            memory_mb: Some(4096),
            pids: Some(512)
        }
    );
}

#[test]
fn mcp_builtin_server_with_options() {
    let f = Fixture::new();
    let spec = f
        .run(
            None,
            Some(
                "[mcp.tmux-debug]\naudit = \"/workspace/.debug-audit.log\"\naudit_full = \"~/audit\"\nenv = { RUST_LOG = \"debug\" }\n",
            ),
            Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let s = &spec.mcp["tmux-debug"];
    assert_eq!(s.command, ["/run/wrapix/bin/wrapix", "mcp", "tmux-debug"]);
    assert_eq!(s.env["TMUX_DEBUG_AUDIT"], "/workspace/.debug-audit.log");
    assert_eq!(s.env["TMUX_DEBUG_AUDIT_FULL"], "/home/u/audit");
    assert_eq!(s.env["RUST_LOG"], "debug");
    assert!(s.builtin);
    assert_eq!(s.needs[0].program, "tmux");
    // No options: the server with its defaults.
    let spec = f
        .run(None, Some("[mcp.tmux-debug]\n"), Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(spec.mcp["tmux-debug"].env.is_empty());
}

#[test]
fn mcp_user_server_and_layering() {
    let f = Fixture::new();
    let user = "[mcp.tmux-debug]\n[mcp.docs]\ncommand = [\"docs-mcp\", \"--stdio\"]\n";
    let spec = f
        .run(Some(user), None, Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.mcp.len(), 2);
    assert_eq!(spec.mcp["docs"].command, ["docs-mcp", "--stdio"]);
    assert!(!spec.mcp["docs"].builtin);
    // The project's table replaces the user's; enabled = false turns one off.
    let project = "[mcp.tmux-debug]\nenabled = false\n[mcp.docs]\ncommand = [\"/workspace/mcp\"]\n";
    let spec = f
        .run(Some(user), Some(project), Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.mcp.keys().collect::<Vec<_>>(), ["docs"]);
    assert_eq!(spec.mcp["docs"].command, ["/workspace/mcp"]);
    assert!(matches!(spec.origin("mcp"), Origin::Project(_)));
}

#[test]
fn mcp_needs_go_into_the_image() {
    let f = Fixture::new();
    let spec = f
        .run(
            None,
            Some("profile = \"base\"\n[mcp.tmux-debug]\n"),
            Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let Profile::Image(img) = &spec.profile else {
        panic!("not an image profile")
    };
    assert!(img.packages.iter().any(|p| p.to_string() == "tmux"));
    let without = f
        .run(None, Some("profile = \"base\"\n"), Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let Profile::Image(plain) = &without.profile else {
        panic!("not an image profile")
    };
    assert!(!plain.packages.iter().any(|p| p.to_string() == "tmux"));
}

#[test]
fn mcp_bad_input_names_the_key() {
    let f = Fixture::new();
    let cases = [
        (
            "[mcp.tmux-debug]\naudti = \"/x\"\n",
            "key `mcp.tmux-debug.audti`: unknown key",
            "use one of: command, env, enabled, audit, audit_full",
        ),
        (
            "[mcp.tmux-debug]\naudit = \"relative.log\"\n",
            "wrapix.toml:2:9: key `mcp.tmux-debug.audit`",
            "absolute path",
        ),
        (
            "[mcp.tmux-debug]\naudit = \"/a/../../etc/x\"\n",
            "key `mcp.tmux-debug.audit`",
            "contains `..`",
        ),
        (
            "[mcp.tmux-debug]\naudit = 3\n",
            "key `mcp.tmux-debug.audit`",
            "is not a string",
        ),
        (
            "[mcp.tmux-debug]\ncommand = [\"sh\"]\n",
            "key `mcp.tmux-debug.command`",
            "built-in server",
        ),
        (
            "[mcp.mine]\nenv = { A = \"b\" }\n",
            "wrapix.toml:1:1: key `mcp.mine.command`",
            "not a built-in MCP server (built in: tmux-debug)",
        ),
        (
            "[mcp.mine]\ncommand = []\n",
            "key `mcp.mine.command`",
            "non-empty list",
        ),
        (
            "[mcp.mine]\ncommand = [\"a\", 3]\n",
            "key `mcp.mine.command`",
            "non-empty list",
        ),
        (
            "[mcp.mine]\ncommand = [\"a\"]\naudit = \"/x\"\n",
            "key `mcp.mine.audit`",
            "use one of: command, env, enabled",
        ),
        (
            "[mcp.mine]\ncommand = [\"a\"]\nenv = { \"1A\" = \"b\" }\n",
            "key `mcp.mine.env.1A`",
            "letters, digits",
        ),
        (
            "[mcp.mine]\ncommand = [\"a\"]\nenv = { A = 1 }\n",
            "key `mcp.mine.env.A`",
            "not a string",
        ),
        (
            "[mcp.mine]\ncommand = [\"a\"]\nenabled = \"no\"\n",
            "key `mcp.mine.enabled`",
            "not a boolean",
        ),
        (
            "[mcp.\"a b\"]\ncommand = [\"a\"]\n",
            "key `mcp.a b`",
            "not a plain name",
        ),
        ("mcp = 3\n", "key `mcp`", "invalid type"),
    ];
    for (text, want_start, want_detail) in cases {
        let e = f
            .run(None, Some(text), Overrides::default())
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(e.contains(want_start), "{text:?} → {e}");
        assert!(e.contains(want_detail), "{text:?} → {e}");
        assert!(e.contains("(fix: "), "{text:?} → {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

#[test]
fn mount_sources_never_pass_through_a_link_in_the_project() {
    let f = Fixture::new();
    let project = f.dir.path().join("project");
    let home = f.dir.path().join("home");
    std::fs::create_dir(project.join("data")).unwrap();
    // A plain folder in the project, and a link outside it (the user's own): both fine.
    std::os::unix::fs::symlink(project.join("data"), f.dir.path().join("outside-link")).unwrap();
    let text = "[[mounts]]\nsource = \"data\"\ndest = \"/d\"\nmode = \"rw\"\n";
    let spec = f.run(None, Some(text), Overrides::default()).unwrap();
    assert_eq!(spec.mounts[0].source, project.join("data"));
    let via = format!(
        "[[mounts]]\nsource = \"{}\"\ndest = \"/d\"\n",
        f.dir.path().join("outside-link").display()
    );
    let spec = f.run(Some(&via), None, Overrides::default()).unwrap();
    assert_eq!(spec.mounts[0].source, project.join("data"));
    // The agent replaces `data` with a link to the home: refused, from either config.
    std::fs::remove_dir(project.join("data")).unwrap();
    std::os::unix::fs::symlink(&home, project.join("data")).unwrap();
    let e = f.run(None, Some(text), Overrides::default()).unwrap_err();
    assert!(e.contains("symbolic link inside the project"), "{e}");
    let e = f.run(Some(&via), None, Overrides::default()).unwrap_err();
    assert!(e.contains("symbolic link inside the project"), "{e}");
    // A link on the way, too.
    std::fs::remove_file(project.join("data")).unwrap();
    std::os::unix::fs::symlink(&home, project.join("d2")).unwrap();
    let e = f
        .run(
            None,
            Some("[[mounts]]\nsource = \"d2/.ssh\"\ndest = \"/d\"\n"),
            Overrides::default(),
        )
        .unwrap_err();
    assert!(e.contains("symbolic link inside the project"), "{e}");
}

#[test]
fn a_project_file_cannot_loosen_the_users_own_limits() {
    let f = Fixture::untrusted();
    let user = "network = \"none\"\n[resources]\nmemory_mb = 512\npids = 100\n";
    // Without the user config these are harmless (the default, or limits of its own)...
    assert!(f
        .run(
            None,
            Some("network = \"open\"\n[resources]\nmemory_mb = 4096\n"),
            Overrides::default()
        )
        .is_ok());
    // ...over it they widen: refused until trusted.
    for (text, key) in [
        ("network = \"open\"\n", "network"),
        ("[resources]\nmemory_mb = 4096\n", "resources.memory_mb"),
        ("[resources]\npids = 101\n", "resources.pids"),
    ] {
        let e = f
            .run(Some(user), Some(text), Overrides::default())
            .unwrap_err();
        assert!(e.contains(key) && e.contains("wrapix trust"), "{text}: {e}");
    }
    // Tightening further is fine.
    assert!(f
        .run(
            Some(user),
            Some("network = \"none\"\n[resources]\nmemory_mb = 256\npids = 50\n"),
            Overrides::default()
        )
        .is_ok());
    // Trusted, the project's value applies.
    let spec = Fixture::new()
        .run(
            Some(user),
            Some("network = \"open\"\n"),
            Overrides::default(),
        )
        .unwrap();
    assert_eq!(spec.network, Network::Open);
}

#[test]
fn a_project_file_cannot_undo_the_users_profile_or_mcp_choices() {
    let f = Fixture::untrusted();
    let user = "profile = \"base\"\n[mcp.tmux-debug]\nenabled = false\n";
    for (text, key) in [
        ("profile = \"host\"\n", "profile"),
        (
            "[mcp.tmux-debug]\naudit = \"/workspace/a.log\"\n",
            "mcp.tmux-debug",
        ),
    ] {
        let e = f
            .run(Some(user), Some(text), Overrides::default())
            .unwrap_err();
        assert!(e.contains(key) && e.contains("wrapix trust"), "{text}: {e}");
    }
    // Another image profile, or the server kept off: fine.
    assert!(f
        .run(
            Some(user),
            Some("profile = \"rust\"\n[mcp.tmux-debug]\nenabled = false\n"),
            Overrides::default()
        )
        .is_ok());
}

#[test]
fn forward_keys_flags_and_ports() {
    let f = Fixture::new();
    let key = f.dir.path().join("home/.ssh/id_deploy");
    std::fs::write(&key, "k").unwrap_or_else(|e| panic!("{e}"));
    let user = "[forward]\ndisplay = \"x11\"\nssh_agent = [\"~/.ssh/id_deploy\"]\n[[ports]]\nhost = 8080\nsandbox = 3000\n";
    let flags = Overrides {
        forward: vec!["xvfb".into(), "git-config".into()],
        ports: vec!["0.0.0.0:9000:80".into()],
        ..Default::default()
    };
    let spec = f
        .run(Some(user), None, flags)
        .unwrap_or_else(|e| panic!("{e}"));
    let fw = &spec.forward;
    assert_eq!(fw.display, Some(crate::Display::Xvfb));
    assert_eq!(fw.ssh_agent, Some(crate::SshAgent::Keys(vec![key])));
    assert!(fw.git_config);
    let shown: Vec<String> = fw.ports.iter().map(|p| p.to_string()).collect();
    assert_eq!(shown, ["127.0.0.1:8080 -> 3000", "0.0.0.0:9000 -> 80"]);
    assert_eq!(spec.origin("forward.display"), &Origin::Flag("--forward"));
}

#[test]
fn forward_audio_dbus_nix_gpu() {
    let f = Fixture::new();
    let user = "[forward]\naudio = true\ndbus = [\"org.freedesktop.Notifications\", \"org.freedesktop.Notifications\"]\nnix = true\n";
    let flags = Overrides {
        forward: vec!["gpu".into(), "dbus=org.a.B,org.c.*".into()],
        ..Default::default()
    };
    let spec = f
        .run(Some(user), None, flags)
        .unwrap_or_else(|e| panic!("{e}"));
    let fw = &spec.forward;
    assert!(fw.audio && fw.nix && fw.gpu);
    assert_eq!(fw.dbus, ["org.a.B", "org.c.*"]);
    assert_eq!(spec.origin("forward.dbus"), &Origin::Flag("--forward"));
    assert_eq!(fw.names(), ["audio", "dbus", "nix", "gpu"]);
    let spec = f
        .run(Some(user), None, Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.forward.dbus, ["org.freedesktop.Notifications"]);
    for (text, want) in [
        (
            "[forward]\ndbus = [\"org.freedesktop.DBus\"]\n",
            "key `forward.dbus`: \"org.freedesktop.DBus\" is not a bus name",
        ),
        ("[forward]\ndbus = [\":1.3\"]\n", "not a bus name"),
        ("[forward]\ndbus = \"org.a.B\"\n", "forward.dbus"),
        ("[forward]\naudio = \"yes\"\n", "forward.audio"),
        ("[forward]\nwebcam = true\n", "webcam"),
    ] {
        let e = f
            .run(Some(text), None, Overrides::default())
            .err()
            .unwrap_or_default();
        assert!(e.contains(want), "{text}: {e}");
    }
    let flags = Overrides {
        forward: vec!["dbus".into()],
        ..Default::default()
    };
    let e = f.run(None, None, flags).err().unwrap_or_default();
    assert!(e.contains("dbus=NAME,NAME"), "{e}");
}

#[test]
fn forward_errors_name_the_key_and_fix() {
    let f = Fixture::new();
    let e = f
        .run(
            Some("[forward]\ndisplay = \"vnc\"\n"),
            None,
            Overrides::default(),
        )
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("key `forward.display`: unknown display \"vnc\""),
        "{e}"
    );
    let e = f
        .run(
            Some("[forward]\nssh_agent = [\"~/.ssh/nope\"]\n"),
            None,
            Overrides::default(),
        )
        .err()
        .unwrap_or_default();
    assert!(e.contains("nope cannot be read"), "{e}");
    let e = f
        .run(
            Some("[forward]\nssh_agent = \"yes\"\n"),
            None,
            Overrides::default(),
        )
        .err()
        .unwrap_or_default();
    assert!(e.contains("true, false, or a list"), "{e}");
    let flags = Overrides {
        ports: vec!["8080:3000".into()],
        network: Some("none".into()),
        ..Default::default()
    };
    let e = f.run(None, None, flags).err().unwrap_or_default();
    assert!(e.contains("published ports need network = \"open\""), "{e}");
    let e = f
        .run(
            Some("[[ports]]\nhost = 70000\nsandbox = 1\n"),
            None,
            Overrides::default(),
        )
        .err()
        .unwrap_or_default();
    assert!(e.contains("key `ports[0].host`"), "{e}");
    let flags = Overrides {
        forward: vec!["camera".into()],
        ..Default::default()
    };
    let e = f.run(None, None, flags).err().unwrap_or_default();
    assert!(e.contains("unknown forward \"camera\""), "{e}");
}

#[test]
fn a_project_forward_needs_trust() {
    let f = Fixture::untrusted();
    let e = f
        .run(
            None,
            Some("[forward]\ndisplay = \"xvfb\"\n"),
            Overrides::default(),
        )
        .err()
        .unwrap_or_default();
    assert!(e.contains("forward.display"), "{e}");
}

#[test]
fn require_kvm_from_any_layer_and_the_flag_needs_qemu() {
    let f = Fixture::new();
    // Off unless asked for; a project file can ask for it, and cannot take it back.
    let spec = f
        .run(None, None, Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!spec.require_kvm);
    let spec = f
        .run(
            Some("require_kvm = true\n"),
            Some("require_kvm = false\n"),
            Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(spec.require_kvm);
    let spec = f
        .run(None, Some("require_kvm = true\n"), Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(spec.require_kvm);
    // Bad input: not a boolean; the flag with another backend.
    let e = f
        .run(None, Some("require_kvm = 1\n"), Overrides::default())
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("wrapix.toml:1:") && e.contains("require_kvm"),
        "{e}"
    );
    let e = f
        .run(
            None,
            None,
            Overrides {
                backend: Some("bwrap".into()),
                require_kvm: true,
                ..Default::default()
            },
        )
        .err()
        .unwrap_or_default();
    assert!(e.contains("--require-kvm") && e.contains("qemu"), "{e}");
}

mod network {
    use super::*;
    use crate::egress::{Decision, HostPattern};

    fn allow_of(spec: &Spec) -> Vec<String> {
        match &spec.network {
            Network::Filtered(e) => e.allow.iter().map(|p| p.to_string()).collect(),
            other => panic!("not an allowlist: {other}"),
        }
    }

    fn ok(user: Option<&str>, project: Option<&str>, flags: Overrides) -> Spec {
        Fixture::new()
            .run(user, project, flags)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(user: Option<&str>, project: Option<&str>, flags: Overrides) -> String {
        match Fixture::new().run(user, project, flags) {
            Ok(s) => panic!("accepted: {}", s.network),
            Err(e) => e,
        }
    }

    #[test]
    fn an_allowlist_with_sets_and_deny() {
        let user = "[network.sets]\nwork = [\"github.com\", \"*.githubusercontent.com\"]\n";
        let project = "network = { allow = [\"@work\", \"crates.io\"], deny = [\"evil.githubusercontent.com\"] }\n";
        let spec = ok(Some(user), Some(project), Overrides::default());
        assert_eq!(
            allow_of(&spec),
            ["github.com", "*.githubusercontent.com", "crates.io"]
        );
        let e = spec.network.egress().unwrap();
        assert_eq!(
            e.deny,
            [HostPattern::parse("evil.githubusercontent.com").unwrap()]
        );
        assert!(matches!(
            e.decide(&crate::egress::normalise_host("evil.githubusercontent.com").unwrap()),
            Decision::Deny(_)
        ));
        assert_eq!(
            spec.origin("network"),
            &Origin::Project("wrapix.toml".into())
        );
    }

    #[test]
    fn allow_host_flags_add_or_make_a_list() {
        let flags = Overrides {
            allow_hosts: vec!["example.org".into()],
            ..Default::default()
        };
        let spec = ok(None, None, flags.clone());
        assert_eq!(allow_of(&spec), ["example.org"]);
        assert_eq!(spec.origin("network"), &Origin::Flag("--allow-host"));
        let spec = ok(
            None,
            Some("network = { allow = [\"github.com\"] }\n"),
            flags.clone(),
        );
        assert_eq!(allow_of(&spec), ["github.com", "example.org"]);
        let both = Overrides {
            network: Some("open".into()),
            ..flags
        };
        assert!(err(None, None, both).contains("--allow-host"));
    }

    #[test]
    fn an_empty_allowlist_is_none_and_deny_adds_up() {
        let spec = ok(
            None,
            Some("network = { allow = [] }\n"),
            Overrides::default(),
        );
        assert_eq!(spec.network, Network::None);
        let user = "[network]\nallow = [\"*.example.org\"]\ndeny = [\"bad.example.org\"]\nnotify_denied = true\n";
        let project = "network = { allow = [\"*.example.org\"] }\n";
        let spec = ok(Some(user), Some(project), Overrides::default());
        let e = spec.network.egress().unwrap();
        assert_eq!(
            e.deny.len(),
            1,
            "the user's deny is kept under the project's allowlist"
        );
        assert!(e.notify_denied);
    }

    #[test]
    fn bad_input_is_named() {
        let cases: &[(Option<&str>, &str, &str)] = &[
            (None, "network = { allow = [\"*\"] }\n", "wildcard"),
            (
                None,
                "network = { allow = [\"https://github.com\"] }\n",
                "not a URL",
            ),
            (
                None,
                "network = { allow = [\"a..b\"] }\n",
                "not a host name",
            ),
            (None, "network = { allow = [\"*.com\"] }\n", "two labels"),
            (
                None,
                "network = { allow = [\"@nope\"] }\n",
                "unknown host set \"@nope\"",
            ),
            (
                None,
                "network = { allow = \"github.com\" }\n",
                "list of strings",
            ),
            (None, "network = { allow = [3] }\n", "list of strings"),
            (None, "network = { deny = [\"x.org\"] }\n", "no `allow`"),
            (
                None,
                "network = { allow = [\"x.org\"], allwo = 1 }\n",
                "unknown key",
            ),
            (
                None,
                "network = 3\n",
                "expected \"open\", \"none\" or a table",
            ),
            (None, "network = \"maybe\"\n", "unknown network policy"),
            (
                None,
                "[network]\nallow = [\"x.org\"]\n[network.sets]\nw = [\"y.org\"]\n",
                "user config",
            ),
            (
                Some("[network.sets]\nw = [\"@v\"]\n"),
                "network = { allow = [\"@w\"] }\n",
                "not other sets",
            ),
        ];
        for (user, project, want) in cases {
            let e = err(*user, Some(project), Overrides::default());
            assert!(e.contains(want), "{project:?}: {e}");
            assert!(e.contains("fix:"), "{e}");
        }
    }

    const CRED: &str = "[[network.credentials]]\nhost = \"api.anthropic.com\"\nheader = \"X-Api-Key\"\nfrom_env = \"ANTHROPIC_API_KEY\"\n";

    #[test]
    fn credentials_parse_add_up_and_show_no_secret() {
        let user = format!("[network]\nallow = [\"api.anthropic.com\", \"git.example\"]\n{CRED}");
        let project = "[network]\nallow = [\"api.anthropic.com\", \"git.example\"]\n\
            [[network.credentials]]\nhost = \"git.example\"\nport = 8443\nheader = \"authorization\"\n\
            prefix = \"Bearer \"\nfrom_file = \"~/.config/git-token\"\nca_file = \"/etc/corp.pem\"\n";
        let spec = ok(Some(&user), Some(project), Overrides::default());
        let e = spec.network.egress().unwrap();
        assert_eq!(e.credentials.len(), 2, "{:?}", e.credentials);
        let a = &e.credentials[0];
        assert_eq!(
            (a.host.as_str(), a.port, a.header.as_str()),
            ("api.anthropic.com", 443, "x-api-key")
        );
        assert_eq!(
            a.source,
            crate::egress::SecretSource::Env("ANTHROPIC_API_KEY".into())
        );
        let g = &e.credentials[1];
        assert_eq!((g.port, g.prefix.as_str()), (8443, "Bearer "));
        assert!(
            matches!(&g.source, crate::egress::SecretSource::File(p) if p.ends_with("home/.config/git-token"))
        );
        assert_eq!(g.ca_file.as_deref(), Some(Path::new("/etc/corp.pem")));
        assert!(e
            .credential(&crate::Host::Name("git.example".into()), 8443)
            .is_some());
        assert!(e
            .credential(&crate::Host::Name("git.example".into()), 443)
            .is_none());
        let shown = spec.network.to_string();
        assert!(
            shown.contains(
                "credentials [api.anthropic.com:443 x-api-key from_env ANTHROPIC_API_KEY"
            ),
            "{shown}"
        );
    }

    #[test]
    fn bad_credentials_are_named() {
        let allow = "[network]\nallow = [\"api.anthropic.com\"]\n";
        let cases: &[(String, &str)] = &[
            (CRED.to_owned(), "the network is open"),
            (format!("[network]\nallow = [\"x.org\"]\n{CRED}"), "is not allowed by the allowlist"),
            (format!("[network]\nallow = [\"*.anthropic.com\"]\ndeny = [\"api.anthropic.com\"]\n{CRED}"), "deny api.anthropic.com"),
            (format!("{allow}[[network.credentials]]\nhost = \"*.anthropic.com\"\nheader = \"a\"\nfrom_env = \"K\"\n"), "not one host name"),
            (format!("{allow}[[network.credentials]]\nhost = \"api.anthropic.com\"\nheader = \"a\"\n"), "exactly one of from_env and from_file"),
            (format!("{allow}[[network.credentials]]\nhost = \"api.anthropic.com\"\nheader = \"a\"\nfrom_env = \"K\"\nfrom_file = \"/k\"\n"), "exactly one of"),
            (format!("{allow}[[network.credentials]]\nhost = \"api.anthropic.com\"\nheader = \"x key\"\nfrom_env = \"K\"\n"), "not a header name"),
            (format!("{allow}[[network.credentials]]\nhost = \"api.anthropic.com\"\nheader = \"Host\"\nfrom_env = \"K\"\n"), "frames or routes"),
            (format!("{allow}[[network.credentials]]\nhost = \"api.anthropic.com\"\nheader = \"a\"\nfrom_file = \"key.txt\"\n"), "network.credentials.from_file"),
            (format!("{allow}[[network.credentials]]\nhost = \"api.anthropic.com\"\nheader = \"a\"\nfrom_env = \"K\"\nport = 0\n"), "not a port"),
            (format!("{allow}[[network.credentials]]\nhost = \"api.anthropic.com\"\nheader = \"a\"\nfrom_env = \"K\"\nsecret = \"x\"\n"), "unknown key \"secret\""),
            (format!("{allow}{CRED}{CRED}"), "two credentials"),
        ];
        for (project, want) in cases {
            let e = err(None, Some(project), Overrides::default());
            assert!(e.contains(want), "{project:?}: {e}");
            assert!(e.contains("fix:"), "{e}");
        }
        // A secret file in the project is one the sandbox reads.
        let f = Fixture::new();
        let project = format!(
            "{allow}[[network.credentials]]\nhost = \"api.anthropic.com\"\nheader = \"a\"\nfrom_file = \"{}\"\n",
            f.dir.path().join("project/key").display()
        );
        let e = f
            .run(None, Some(&project), Overrides::default())
            .unwrap_err();
        assert!(e.contains("is in the project"), "{e}");
    }

    #[test]
    fn a_project_asking_for_credentials_needs_trust() {
        let project = format!("[network]\nallow = [\"api.anthropic.com\"]\n{CRED}");
        let e = Fixture::untrusted()
            .run(None, Some(&project), Overrides::default())
            .unwrap_err();
        assert!(e.contains("network.credentials"), "{e}");
        assert!(e.contains("wrapix trust"), "{e}");
    }
}
