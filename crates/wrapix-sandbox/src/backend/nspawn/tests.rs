//! The whole nspawn argv, pinned, and the staged folder it names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use wrapix_spec::{
    Agent, AgentHome, BackendKind, HostUser, MountMode, Network, Profile, Resources, SandboxPath,
    Spec,
};

use super::*;
use crate::prepare::{Bind, GeneratedFile, Prepared};
use crate::root::RootFs;

fn prepared(network: Network, resources: Resources) -> Prepared {
    let ws = SandboxPath::from_static("/workspace");
    let home = SandboxPath::from_static("/home/ada");
    let spec = Spec {
        project: "/home/ada/proj".into(),
        backend: BackendKind::Named("nspawn"),
        profile: Profile::Host,
        network: network.clone(),
        env: BTreeMap::new(),
        mounts: vec![],
        deploy_key: None,
        agent: Agent {
            command: vec!["claude".into()],
            home: AgentHome::Project,
            forward_api_key: false,
        },
        protect: vec![".git/hooks".into()],
        resources,
        mcp: Default::default(),
        forward: Default::default(),
        user: HostUser {
            uid: 1000,
            gid: 1000,
            name: "ada".into(),
            home: "/home/ada".into(),
        },
        require_kvm: false,
        origins: BTreeMap::new(),
    };
    let bind = |s: &str, d: SandboxPath, mode| Bind {
        source: PathBuf::from(s),
        dest: d,
        mode,
    };
    Prepared {
        spec,
        root: RootFs {
            name: "host".into(),
            entries: vec![
                RootEntry::RoBind {
                    source: "/usr".into(),
                    dest: "/usr".into(),
                },
                RootEntry::Symlink {
                    target: "usr/bin".into(),
                    dest: "/bin".into(),
                },
                RootEntry::RoBind {
                    source: "/home/ada/.cache/wrapix/etc/k".into(),
                    dest: "/etc".into(),
                },
            ],
            image: None,
        },
        home: home.clone(),
        home_source: None,
        pinned: Vec::new(),
        devices: Vec::new(),
        binds: vec![
            bind("/home/ada/proj", ws.clone(), MountMode::ReadWrite),
            bind(
                "/home/ada/proj/.git/hooks",
                ws.join(".git/hooks"),
                MountMode::ReadOnly,
            ),
            bind(
                "/home/ada/.local/state/wrapix/projects/proj-0123456789abcdef/claude",
                home.join(".claude"),
                MountMode::ReadWrite,
            ),
        ],
        files: vec![
            GeneratedFile {
                dest: SandboxPath::from_static("/etc/resolv.conf"),
                contents: b"nameserver 169.254.1.53\n".to_vec(),
                writable: false,
            },
            GeneratedFile {
                dest: home.join(".gitconfig"),
                contents: b"g".to_vec(),
                writable: true,
            },
        ],
        env: [
            ("HOME".to_owned(), "/home/ada".to_owned()),
            ("ANTHROPIC_API_KEY".to_owned(), "sk-secret".to_owned()),
        ]
        .into(),
        command: vec!["claude".into(), "--dangerously-skip-permissions".into()],
        network: network.clone(),
        dns_forward: (network == Network::Open).then(|| "169.254.1.53".to_owned()),
        terminal: false,
        self_exe: "/usr/bin/wrapix".into(),
        init_exe: Some("/usr/bin/wrapix-init".into()),
        serve_exe: None,
        etc: None,
        notices: vec![],
        after_exit: vec![],
    }
}

fn backend() -> Nspawn {
    Nspawn {
        nspawn: Some("/usr/bin/systemd-nspawn".into()),
        pasta: Some("/usr/bin/pasta".into()),
        systemd_run: None,
        root: true,
        stage: "/run/wrapix-nspawn/nspawn-42".into(),
        limits: None,
    }
}

fn args(p: &LaunchPlan) -> Vec<String> {
    p.args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn argv_network_none() {
    let p = backend()
        .plan(&prepared(Network::None, Resources::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(p.render());
    let a = args(&p);
    for flag in [
        "--private-users=pick",
        "--private-network",
        "--drop-capability=all",
        "--no-new-privileges=yes",
        "--read-only",
        "--register=no",
    ] {
        assert!(a.iter().any(|x| x == flag), "{flag} missing: {a:?}");
    }
    // The environment never reaches nspawn's argv or its own environment.
    assert!(!a.iter().any(|x| x.contains("sk-secret")), "{a:?}");
    assert!(!p
        .env
        .iter()
        .any(|(_, v)| v.to_string_lossy().contains("sk-secret")));
    assert!(p.holder_in_child.is_some() && p.guard_backend);
    assert_eq!(p.signals, SignalTarget::Holder);
    assert_eq!(p.release_fifo, None);
}

#[test]
fn argv_network_open() {
    let p = backend()
        .plan(&prepared(Network::Open, Resources::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(p.render());
    let net = p.network.as_ref().unwrap_or_else(|| panic!("no network"));
    assert!(net.join_userns);
    assert_eq!(
        p.release_fifo.as_deref(),
        Some(Path::new("/run/wrapix-nspawn/nspawn-42/run-wrapix/release"))
    );
    let a = args(&p);
    let i = a.iter().position(|x| x == "--wait-file").unwrap_or(0);
    assert_eq!(a.get(i + 1).map(String::as_str), Some(RELEASE_INSIDE));
}

#[test]
fn refusals_name_the_fix() {
    let run = prepared(Network::None, Resources::default());
    let err =
        |b: Nspawn, run: &Prepared| b.plan(run).err().map(|e| e.to_string()).unwrap_or_default();
    let e = err(
        Nspawn {
            root: false,
            ..backend()
        },
        &run,
    );
    assert!(e.contains("only as root") && e.contains("sudo"), "{e}");
    let e = err(
        Nspawn {
            nspawn: None,
            ..backend()
        },
        &run,
    );
    assert!(e.contains("systemd-container"), "{e}");
    let e = err(
        Nspawn {
            pasta: None,
            ..backend()
        },
        &prepared(Network::Open, Resources::default()),
    );
    assert!(e.contains("passt"), "{e}");
    let limited = prepared(
        Network::None,
        Resources {
            memory_mb: Some(64),
            ..Resources::default()
        },
    );
    let e = err(
        Nspawn {
            limits: Some(Err("no systemd".into())),
            ..backend()
        },
        &limited,
    );
    assert!(e.contains("[resources]") && e.contains("no systemd"), "{e}");
    let mut colon = prepared(Network::None, Resources::default());
    colon.binds[0].source = "/home/ada/a:b".into();
    let e = err(backend(), &colon);
    assert!(e.contains("`:`"), "{e}");
}

#[test]
fn resources_go_through_a_scope() {
    let scope = crate::backend::limits::Scope {
        systemd_run: "/usr/bin/systemd-run".into(),
        user: false,
        runtime_dir: None,
    };
    let run = prepared(
        Network::None,
        Resources {
            memory_mb: Some(64),
            pids: Some(100),
            cpus: None,
        },
    );
    let p = Nspawn {
        limits: Some(Ok(scope)),
        ..backend()
    }
    .plan(&run)
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.program, Path::new("/usr/bin/systemd-run"));
    let a = args(&p);
    assert!(a.contains(&"--property=MemoryMax=64M".to_owned()), "{a:?}");
    assert!(a.contains(&"/usr/bin/systemd-nspawn".to_owned()), "{a:?}");
}

/// Staging writes the skeleton (mount points, links), the home with its files, the env file
/// and the filter; cleanup removes all of it.
#[test]
fn staging_builds_the_folder_the_plan_names() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: staging chowns to the user, which needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let b = Nspawn {
        stage: dir.path().join("wrapix-nspawn/nspawn-1"),
        ..backend()
    };
    let mut run = prepared(Network::Open, Resources::default());
    // Sources that exist here.
    run.root.entries[2] = RootEntry::RoBind {
        source: "/etc".into(),
        dest: "/etc".into(),
    };
    let proj = dir.path().join("proj");
    let claude = dir.path().join("claude");
    std::fs::create_dir_all(proj.join(".git/hooks")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(&claude).unwrap_or_else(|e| panic!("{e}"));
    run.binds[0].source = proj.clone();
    run.binds[1].source = proj.join(".git/hooks");
    run.binds[2].source = claude;
    b.stage(&run).unwrap_or_else(|e| panic!("{e}"));
    let s = &b.stage;
    for p in [
        "root/usr",
        "root/dev",
        "root/var/tmp",
        "root/workspace",
        "root/home/ada",
        "root/etc",
        "home/.claude",
    ] {
        assert!(s.join(p).symlink_metadata().is_ok(), "{p} missing");
    }
    assert_eq!(
        std::fs::read_link(s.join("root/bin")).ok(),
        Some(PathBuf::from("usr/bin"))
    );
    for link in ["wrapix-notify", "ralph"] {
        assert_eq!(
            std::fs::read_link(s.join("run-wrapix/bin").join(link)).ok(),
            Some(PathBuf::from("wrapix")),
            "{link}"
        );
    }
    use std::os::unix::fs::MetadataExt;
    let home = std::fs::metadata(s.join("home")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((home.uid(), home.mode() & 0o777), (1000, 0o700));
    assert_eq!(
        std::fs::read(s.join("home/.gitconfig")).ok(),
        Some(b"g".to_vec())
    );
    let env = std::fs::read(s.join("run-wrapix/env")).unwrap_or_default();
    assert!(env
        .split(|c| *c == 0)
        .any(|e| e == b"ANTHROPIC_API_KEY=sk-secret"));
    let bpf = std::fs::metadata(s.join("run-wrapix/seccomp.bpf")).unwrap_or_else(|e| panic!("{e}"));
    assert!(bpf.len() > 0 && bpf.len().is_multiple_of(8));
    assert!(std::fs::symlink_metadata(s.join("run-wrapix/release"))
        .map(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()))
        .unwrap_or(false));
    b.cleanup();
    assert!(!s.exists());
}

#[test]
fn stale_folders_of_gone_runs_are_removed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gone = dir.path().join("nspawn-999999999");
    let live = dir.path().join(format!("nspawn-{}", std::process::id()));
    let other = dir.path().join("not-ours");
    for d in [&gone, &live, &other] {
        std::fs::create_dir_all(d.join("root/usr")).unwrap_or_else(|e| panic!("{e}"));
    }
    remove_stale(dir.path());
    assert!(!gone.exists());
    assert!(live.exists() && other.exists());
}

/// A protected path held open since its check is bound through that handle: the plan names a
/// staged pin path, passes the handle, and asks the executor to bind it there.
#[test]
fn pinned_sources_are_bound_through_their_handle() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hooks = dir.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap_or_else(|e| panic!("{e}"));
    let fd = rustix::fs::open(
        &hooks,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut run = prepared(Network::None, Resources::default());
    run.binds[1].source = hooks.clone();
    run.pinned.push(crate::prepare::Pinned {
        source: hooks.clone(),
        fd: std::sync::Arc::new(fd),
    });
    let p = backend().plan(&run).unwrap_or_else(|e| panic!("{e}"));
    let a = args(&p);
    assert!(
        a.contains(
            &"--bind-ro=/run/wrapix-nspawn/nspawn-42/pin-0:/workspace/.git/hooks:idmap".to_owned()
        ),
        "{a:?}"
    );
    assert!(
        !a.iter().any(|x| x.contains(&*hooks.to_string_lossy())),
        "{a:?}"
    );
    assert_eq!(p.pass.len(), 1);
    assert_eq!(
        p.pin_mounts,
        [crate::plan::PinMount {
            fd: p.pass[0].fd,
            target: "/run/wrapix-nspawn/nspawn-42/pin-0".into(),
        }]
    );
}

#[test]
fn forwards_are_refused_with_the_fix() {
    let mut run = prepared(Network::None, Resources::default());
    run.spec.forward.ssh_agent = Some(wrapix_spec::SshAgent::Host);
    let e = crate::backend::plan(&backend(), &run)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("nspawn backend does not forward ssh_agent"),
        "{e}"
    );
    let mut run = prepared(Network::None, Resources::default());
    run.spec.forward.audio = true;
    run.spec.forward.gpu = true;
    run.spec.forward.display = Some(wrapix_spec::Display::Wayland);
    let e = crate::backend::refuse_forwards(&backend(), &run)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("nspawn backend does not forward display, audio, gpu"),
        "{e}"
    );
}

/// A network allowlist: `--private-network` (loopback only) with nothing to wait for, the
/// egress proxy's socket folder bound (idmapped) where wrapix's init relays to, and the
/// environment, with the relay's variable, in the env file.
#[test]
fn an_allowlist_is_loopback_only_with_the_proxy_socket_folder() {
    let egress = wrapix_spec::Egress {
        allow: vec![wrapix_spec::HostPattern::parse("github.com").unwrap_or_else(|e| panic!("{e}"))],
        ..Default::default()
    };
    let mut run = prepared(Network::Filtered(egress), Resources::default());
    run.binds.push(Bind {
        source: "/run/user/1000/wrapix/sandboxes/p-1/egress".into(),
        dest: SandboxPath::from_static(crate::egress::SANDBOX_DIR),
        mode: MountMode::ReadOnly,
    });
    run.env.insert(
        crate::egress::SOCKET_ENV.into(),
        crate::egress::SANDBOX_SOCKET.into(),
    );
    let p = crate::backend::plan(&backend(), &run).unwrap_or_else(|e| panic!("{e}"));
    let a = args(&p);
    assert!(a.iter().any(|x| x == "--private-network"), "{a:?}");
    assert!(
        a.iter().any(|x| x
            == "--bind-ro=/run/user/1000/wrapix/sandboxes/p-1/egress:/run/wrapix/egress:idmap"),
        "{a:?}"
    );
    assert_eq!((&p.network, &p.release_fifo), (&None, &None));
    assert!(!a.iter().any(|x| x == "--wait-file"), "{a:?}");
    let env = Nspawn::env_file(&run);
    assert!(env
        .split(|c| *c == 0)
        .any(|e| e == b"WRAPIX_EGRESS_SOCKET=/run/wrapix/egress/proxy.sock"));
}
