//! The whole podman argv, pinned: the order of `--volume`s is the mount order (workspace, then
//! protected paths read-only on top, then user mounts, then agent state), and the isolation
//! flags must never go missing.

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
        backend: BackendKind::Named("podman"),
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
            name: "base".into(),
            entries: vec![],
            image: Some("/home/ada/.local/share/wrapix/images/0123/rootfs".into()),
        },
        home: home.clone(),
        home_source: None,
        pinned: Vec::new(),
        devices: Vec::new(),
        binds: vec![
            bind("/home/ada/proj", ws.clone(), MountMode::ReadWrite),
            bind("/home/ada/proj/.git", ws.join(".git"), MountMode::ReadWrite),
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
                dest: SandboxPath::from_static("/etc/passwd"),
                contents: b"p".to_vec(),
                writable: false,
            },
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
        env: [("HOME".to_owned(), "/home/ada".to_owned())].into(),
        command: vec!["claude".into(), "--dangerously-skip-permissions".into()],
        network: network.clone(),
        // As prepare does: a loopback host resolver, forwarded by pasta.
        dns_forward: (network == Network::Open).then(|| "169.254.1.53".to_owned()),
        terminal: false,
        self_exe: "/usr/bin/wrapix".into(),
        init_exe: None,
        serve_exe: None,
        etc: None,
        notices: vec![],
        after_exit: vec![],
    }
}

fn backend(limits: bool) -> Podman {
    Podman {
        podman: Some("/usr/bin/podman".into()),
        pasta: Some("/usr/bin/pasta".into()),
        stage: "/run/user/1000/wrapix-1000/wrapix-proj-42".into(),
        host_env: vec![("HOME".into(), "/home/ada".into())],
        rootless: true,
        limits_enforceable: limits,
        name: "wrapix-proj-42".into(),
    }
}

fn args(p: &LaunchPlan) -> Vec<String> {
    p.args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn argv_network_open() {
    let p = backend(false)
        .plan(&prepared(Network::Open, Resources::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(p.render());
    // The sandbox's environment is in the env file, not on the command line or in podman's env.
    assert!(!p
        .env
        .iter()
        .any(|(k, v)| k == "HOME" && v == "/home/ada/.wrapix"));
}

#[test]
fn argv_network_none_with_limits() {
    let res = Resources {
        cpus: Some(2),
        memory_mb: Some(4096),
        pids: Some(512),
    };
    let p = backend(true)
        .plan(&prepared(Network::None, res))
        .unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(p.render());
}

#[test]
fn isolation_flags_are_always_there() {
    for net in [Network::Open, Network::None] {
        let a = args(
            &backend(false)
                .plan(&prepared(net.clone(), Resources::default()))
                .unwrap_or_else(|e| panic!("{e}")),
        );
        for must in [
            "--rm",
            "--userns=keep-id",
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            "--read-only",
            "--init=false",
        ] {
            assert!(a.iter().any(|x| x == must), "{must} missing for {net}");
        }
        // wrapix's seccomp policy, not Podman's default (which allows user namespaces, keyrings
        // and TIOCSTI); the image cache only under a throw-away overlay.
        assert!(a.iter().any(|x| x.starts_with("--security-opt=seccomp=/")));
        assert!(!a.iter().any(|x| x.contains("seccomp=unconfined")));
        let rootfs = a.iter().position(|x| x == "--rootfs").map(|i| &a[i + 1]);
        assert!(
            rootfs.is_some_and(|r| r.ends_with("/rootfs:O")),
            "{rootfs:?}"
        );
        assert!(!a
            .iter()
            .any(|x| x.contains("--privileged") || x == "--network=host"));
        // Never Podman's networking (slirp4netns reaches host services on 0.0.0.0).
        let nets: Vec<&String> = a.iter().filter(|x| x.starts_with("--net")).collect();
        assert_eq!(nets, ["--network=none"], "{net}");
    }
}

#[test]
fn network_open_holds_the_init_until_pasta_is_attached() {
    let p = backend(false)
        .plan(&prepared(Network::Open, Resources::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let a = args(&p);
    // The release pipe is fd 3 in podman and in the container; the shim's info fd is not.
    assert_eq!(p.block_fd, Some(3));
    assert_eq!(p.info_fd, Some(4));
    assert!(a.iter().any(|x| x == "--preserve-fds=1"), "{a:?}");
    assert_eq!(
        p.pid_file,
        Some(PathBuf::from(
            "/run/user/1000/wrapix-1000/wrapix-proj-42/pid"
        ))
    );
    assert!(a
        .iter()
        .any(|x| x == "--pidfile=/run/user/1000/wrapix-1000/wrapix-proj-42/pid"));
    // The init waits on fd 3, before the command's `--`.
    let init = a
        .iter()
        .position(|x| x == "__init")
        .unwrap_or_else(|| panic!("no init in {a:?}"));
    assert_eq!(a[init + 1..init + 4], ["--wait-fd", "3", "--"], "{a:?}");
    assert_eq!(a[init + 4], "claude");
    // The same pasta as bubblewrap's: no port forwarding either way, no gateway to the host,
    // and the DNS forward.
    let net = p.network.unwrap_or_else(|| panic!("no network setup"));
    assert_eq!(net.program, PathBuf::from("/usr/bin/pasta"));
    let pasta: Vec<String> = net
        .args
        .iter()
        .map(|x| x.to_string_lossy().into_owned())
        .collect();
    let joined = pasta.join(" ");
    assert!(
        joined.contains("--no-map-gw -t none -u none -T none -U none")
            && joined.contains("--dns-forward 169.254.1.53")
            && !joined.contains("--runas"),
        "{joined}"
    );
    // pasta forwards DNS, so the sandbox gets wrapix's resolv.conf, not Podman's.
    assert!(a.iter().any(|x| x.ends_with("/file-1:/etc/resolv.conf:ro")));
}

#[test]
fn network_none_has_nothing_to_wait_for() {
    let p = backend(false)
        .plan(&prepared(Network::None, Resources::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let a = args(&p);
    assert_eq!((p.block_fd, &p.pid_file, &p.network), (None, &None, &None));
    assert!(!a
        .iter()
        .any(|x| x.starts_with("--pidfile") || x.starts_with("--preserve-fds")));
    assert!(!a.iter().any(|x| x == "--wait-fd"));
    // Podman writes resolv.conf (the host's resolvers).
    assert!(!a.iter().any(|x| x.contains("/etc/resolv.conf")));
}

#[test]
fn network_open_needs_pasta() {
    let p = Podman {
        pasta: None,
        ..backend(false)
    };
    let e = p.plan(&prepared(Network::Open, Resources::default()));
    assert!(e.is_err_and(|e| {
        let e = e.to_string();
        e.contains("needs pasta") && e.contains("--network none")
    }));
    assert!(p
        .plan(&prepared(Network::None, Resources::default()))
        .is_ok());
}

#[test]
fn refuses_what_it_cannot_enforce_or_express() {
    let res = Resources {
        memory_mb: Some(512),
        ..Resources::default()
    };
    let e = backend(false).plan(&prepared(Network::None, res));
    assert!(e.is_err_and(|e| e.to_string().contains("cannot be enforced")));

    let mut host = prepared(Network::None, Resources::default());
    host.root.image = None;
    assert!(backend(true)
        .plan(&host)
        .is_err_and(|e| e.to_string().contains("runs from an image")));

    let mut comma = prepared(Network::None, Resources::default());
    comma.binds.push(Bind {
        source: "/tmp/a,b".into(),
        dest: SandboxPath::from_static("/data"),
        mode: MountMode::ReadOnly,
    });
    assert!(backend(true).plan(&comma).is_err());
}

#[test]
fn stage_writes_the_seccomp_profile_the_plan_names() {
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = Podman {
        stage: t.path().join("stage"),
        ..backend(false)
    };
    let run = prepared(Network::None, Resources::default());
    p.stage(&run).unwrap_or_else(|e| panic!("{e}"));
    let a = args(&p.plan(&run).unwrap_or_else(|e| panic!("{e}")));
    let path = a
        .iter()
        .find_map(|x| x.strip_prefix("--security-opt=seccomp="))
        .unwrap_or_else(|| panic!("no seccomp profile in {a:?}"));
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let profile: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ALLOW");
    assert!(text.contains("\"keyctl\""), "{text}");
    p.cleanup();
    assert!(!t.path().join("stage").exists());
}

#[test]
fn stage_refuses_a_shared_parent_and_env_values_with_line_breaks() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let parent = t.path().join("wrapix-1000");
    std::fs::create_dir(&parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).unwrap();
    let p = Podman {
        stage: parent.join("run"),
        ..backend(false)
    };
    let run = prepared(Network::None, Resources::default());
    let e = p.stage(&run).unwrap_err().to_string();
    assert!(e.contains("only you can write"), "{e}");
    assert!(!parent.join("run").exists());

    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut run = prepared(Network::None, Resources::default());
    run.env
        .insert("X".into(), "a\nLD_PRELOAD=/workspace/x.so".into());
    let e = p.stage(&run).unwrap_err().to_string();
    assert!(e.contains("X has a line break"), "{e}");
    assert!(!parent.join("run").join("env").exists());
}

#[test]
fn forwards_are_refused_with_the_fix() {
    let mut run = prepared(Network::None, Resources::default());
    run.spec.forward.display = Some(wrapix_spec::Display::Xvfb);
    let e = crate::backend::plan(&backend(false), &run)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("does not forward display"), "{e}");
    assert!(e.contains("--backend bwrap"), "{e}");
    // And each of the later forwards, alone.
    for (key, set) in [
        (
            "audio",
            (|f: &mut wrapix_spec::Forward| f.audio = true) as fn(&mut _),
        ),
        ("dbus", |f| f.dbus = vec!["org.a.B".into()]),
        ("nix", |f| f.nix = true),
        ("gpu", |f| f.gpu = true),
    ] {
        let mut run = prepared(Network::None, Resources::default());
        set(&mut run.spec.forward);
        let e = crate::backend::plan(&backend(false), &run)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(&format!("does not forward {key}")), "{e}");
    }
}

/// A network allowlist: `--network=none` (loopback only) with nothing to wait for, and the
/// egress proxy's socket folder bound where wrapix's init relays to; staging makes its mount
/// point in the read-only `/run/wrapix`.
#[test]
fn an_allowlist_is_loopback_only_with_the_proxy_socket_folder() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sock_dir = dir.path().join("egress");
    std::fs::create_dir(&sock_dir).unwrap_or_else(|e| panic!("{e}"));
    let egress = wrapix_spec::Egress {
        allow: vec![wrapix_spec::HostPattern::parse("github.com").unwrap_or_else(|e| panic!("{e}"))],
        ..Default::default()
    };
    let mut run = prepared(Network::Filtered(egress), Resources::default());
    run.binds.push(Bind {
        source: sock_dir.clone(),
        dest: SandboxPath::from_static(crate::egress::SANDBOX_DIR),
        mode: MountMode::ReadOnly,
    });
    let b = Podman {
        stage: dir.path().join("wrapix-1000/wrapix-proj-42"),
        ..backend(false)
    };
    let p = crate::backend::plan(&b, &run).unwrap_or_else(|e| panic!("{e}"));
    let a = args(&p);
    assert!(a.iter().any(|x| x == "--network=none"), "{a:?}");
    assert_eq!((p.block_fd, &p.pid_file, &p.network), (None, &None, &None));
    let volume = format!("--volume={}:/run/wrapix/egress:ro", sock_dir.display());
    let run_dir = a.iter().position(|x| x.ends_with(":/run/wrapix:ro"));
    let egress_at = a.iter().position(|x| *x == volume);
    assert!(egress_at.is_some() && run_dir.is_some(), "{a:?}");
    b.stage(&run).unwrap_or_else(|e| panic!("{e}"));
    assert!(b.run_dir().join("egress").is_dir());
    b.cleanup();
}
