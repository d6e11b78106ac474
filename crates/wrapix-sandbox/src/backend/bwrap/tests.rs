//! The whole bwrap argv for representative specs, pinned as snapshots: mount order is a
//! security property (later mounts shadow earlier ones).

use std::collections::BTreeMap;
use std::path::PathBuf;

use wrapix_spec::{
    Agent, AgentHome, BackendKind, HostUser, MountMode, Network, Profile, SandboxPath, Spec,
};

use super::*;
use crate::prepare::{Bind, GeneratedFile, Prepared};
use crate::root::{RootEntry, RootFs};

fn spec(network: Network, uid: u32) -> Spec {
    Spec {
        project: "/home/ada/proj".into(),
        backend: BackendKind::Auto,
        profile: Profile::Host,
        network,
        env: BTreeMap::new(),
        mounts: vec![],
        deploy_key: None,
        agent: Agent {
            command: vec!["claude".into()],
            home: AgentHome::Project,
            forward_api_key: false,
        },
        protect: vec![".git/hooks".into(), ".git/config".into()],
        resources: Default::default(),
        mcp: Default::default(),
        forward: Default::default(),
        user: HostUser {
            uid,
            gid: uid,
            name: "ada".into(),
            home: "/home/ada".into(),
        },
        require_kvm: false,
        origins: BTreeMap::new(),
    }
}

fn prepared(network: Network, uid: u32) -> Prepared {
    let ws = SandboxPath::from_static("/workspace");
    let home = SandboxPath::from_static("/home/ada");
    let bind = |s: &str, d: SandboxPath, mode| Bind {
        source: PathBuf::from(s),
        dest: d,
        mode,
    };
    Prepared {
        spec: spec(network.clone(), uid),
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
                RootEntry::Dir {
                    dest: "/etc".into(),
                },
                RootEntry::RoBind {
                    source: "/etc/ssl".into(),
                    dest: "/etc/ssl".into(),
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
            bind("/home/ada/proj/.git", ws.join(".git"), MountMode::ReadWrite),
            bind(
                "/home/ada/proj/.git/hooks",
                ws.join(".git/hooks"),
                MountMode::ReadOnly,
            ),
            bind(
                "/home/ada/proj/.git/config",
                ws.join(".git/config"),
                MountMode::ReadOnly,
            ),
            bind(
                "/home/ada/.cargo/config.toml",
                home.join(".cargo/config.toml"),
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
                dest: home.join(".gitconfig"),
                contents: b"g".to_vec(),
                writable: true,
            },
        ],
        env: [
            ("HOME".to_owned(), "/home/ada".to_owned()),
            ("PATH".to_owned(), "/usr/bin".to_owned()),
        ]
        .into(),
        command: vec!["claude".into(), "--dangerously-skip-permissions".into()],
        network: network.clone(),
        dns_forward: None,
        terminal: false,
        self_exe: "/opt/wrapix/bin/wrapix".into(),
        init_exe: Some("/opt/wrapix/bin/wrapix-init".into()),
        serve_exe: None,
        etc: None,
        notices: vec![],
        after_exit: vec![],
    }
}

fn backend() -> Bwrap {
    Bwrap {
        bwrap: Some("/usr/bin/bwrap".into()),
        pasta: Some("/usr/bin/pasta".into()),
        systemd_run: None,
        runtime_dir: None,
        limits: None,
    }
}

fn plan(network: Network, uid: u32) -> LaunchPlan {
    backend()
        .plan(&prepared(network, uid))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn argv_network_none() {
    insta::assert_snapshot!(plan(Network::None, 1000).render());
}

/// The `host` profile's usual root: `/etc` assembled in the cache and bound once (with
/// passwd and group in it), resolv.conf bound from the host on top.
#[test]
fn argv_assembled_etc() {
    let mut run = prepared(Network::None, 1000);
    run.root
        .use_assembled_etc(&crate::root::etc::AssembledEtc::for_tests(
            std::path::Path::new("/home/ada/.cache/wrapix/etc/0123456789abcdef"),
            &[("resolv.conf", "/etc/resolv.conf")],
        ));
    run.files.retain(|f| !f.dest.as_path().starts_with("/etc"));
    let p = backend().plan(&run).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(p.render());
}

#[test]
fn argv_network_open() {
    let p = plan(Network::Open, 1000);
    insta::assert_snapshot!(p.render());
    let net = p.network.unwrap_or_else(|| panic!("no network setup"));
    let args: Vec<String> = net
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        args.join(" "),
        "--config-net --quiet --no-map-gw -t none -u none -T none -U none",
        "pasta must forward no ports in either direction and hide the host"
    );
}

/// wrapix's init is always PID 1 (not dumpable, so the agent cannot ptrace it; on a terminal
/// it hands the pty to the command) and gets the signals.
#[test]
fn pid_1_is_always_wrapix_init() {
    let tail = |p: &LaunchPlan| {
        let a = args(p);
        let dash = a.iter().position(|x| x == "--").unwrap_or(a.len());
        a[dash..].join(" ")
    };
    let mut run = prepared(Network::None, 1000);
    for terminal in [false, true] {
        run.terminal = terminal;
        let p = backend().plan(&run).unwrap_or_else(|e| panic!("{e}"));
        assert!(args(&p).iter().any(|x| x == "--as-pid-1"));
        assert_eq!(
            tail(&p),
            "-- /run/wrapix/bin/wrapix-init -- claude --dangerously-skip-permissions"
        );
        assert_eq!(p.signals, SignalTarget::Process);
    }
    // Without wrapix-init installed beside wrapix: `wrapix __init`.
    run.init_exe = None;
    let p = backend().plan(&run).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        tail(&p),
        "-- /run/wrapix/bin/wrapix __init -- claude --dangerously-skip-permissions"
    );
}

/// A command that never starts: 127 when it is not in the sandbox, 126 when it is not
/// executable, 125 when it is (then the sandbox's set-up failed), looked up as inside.
#[test]
fn exit_code_when_the_command_never_starts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let proj = dir.path().join("proj");
    std::fs::create_dir_all(proj.join("bin")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(proj.join("bin/tool"), "#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(proj.join("notes"), "x").unwrap_or_else(|e| panic!("{e}"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        proj.join("bin/tool"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut run = prepared(Network::None, 1000);
    run.binds[0].source = proj.clone();
    let code = |run: &mut Prepared, argv: &[&str]| {
        run.command = argv.iter().map(|a| a.to_string()).collect();
        run.not_started_code()
    };
    // PATH is /usr/bin in the fixture; /bin is a link to usr/bin.
    assert_eq!(code(&mut run, &["sh", "-c", "true"]), 125);
    assert_eq!(code(&mut run, &["/bin/sh"]), 125);
    assert_eq!(code(&mut run, &["wrapix-no-such-program"]), 127);
    assert_eq!(code(&mut run, &["/no/such/program"]), 127);
    assert_eq!(code(&mut run, &["/workspace/bin/tool"]), 125);
    assert_eq!(code(&mut run, &["bin/tool"]), 125);
    assert_eq!(code(&mut run, &["./notes"]), 126);
    assert_eq!(code(&mut run, &["/workspace/bin/none"]), 127);
    // The fixture's agent, `claude`, is not in its root.
    assert_eq!(plan(Network::None, 1000).not_started, Some(127));
}

/// wrapix-serve is mounted beside wrapix only when the run has it (an MCP server of wrapix's).
#[test]
fn wrapix_serve_is_mounted_only_when_needed() {
    let bind = "--ro-bind /opt/wrapix/bin/wrapix-serve /run/wrapix/bin/wrapix-serve";
    let mut run = prepared(Network::None, 1000);
    let p = backend().plan(&run).unwrap_or_else(|e| panic!("{e}"));
    assert!(!args(&p).join(" ").contains("wrapix-serve"));
    run.serve_exe = Some("/opt/wrapix/bin/wrapix-serve".into());
    let p = backend().plan(&run).unwrap_or_else(|e| panic!("{e}"));
    assert!(args(&p).join(" ").contains(bind), "{}", p.render());
}

#[test]
fn root_user_keeps_pasta_as_root() {
    let p = plan(Network::Open, 0);
    let net = p.network.unwrap_or_else(|| panic!("no network setup"));
    assert!(net.args.iter().any(|a| a == "--runas"));
}

fn args(p: &LaunchPlan) -> Vec<String> {
    p.args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn never_shares_the_host_network_or_keeps_capabilities() {
    for net in [Network::None, Network::Open] {
        let a = args(&plan(net.clone(), 1000));
        for must in [
            "--unshare-net",
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup",
            "--disable-userns",
            "--new-session",
            "--die-with-parent",
            "--seccomp",
        ] {
            assert!(a.iter().any(|x| x == must), "{must} missing for {net}");
        }
        assert!(!a.iter().any(|x| x == "--share-net" || x == "--unshare-all"));
        let cap = a
            .iter()
            .position(|x| x == "--cap-drop")
            .unwrap_or_else(|| panic!("no --cap-drop"));
        assert_eq!(a[cap + 1], "ALL");
    }
}

#[test]
fn protected_paths_are_mounted_after_the_workspace() {
    let a = args(&plan(Network::None, 1000));
    let pos = |s: &str| {
        a.iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s} missing"))
    };
    assert!(pos("/workspace") < pos("/workspace/.git"));
    assert!(pos("/workspace/.git") < pos("/workspace/.git/hooks"));
    assert!(pos("/workspace/.git") < pos("/workspace/.git/config"));
    assert_eq!(a[pos("/workspace/.git/hooks") - 2], "--ro-bind");
    assert_eq!(a[pos("/workspace/.git/config") - 2], "--ro-bind");
    // The home tmpfs comes before anything mounted into the home.
    assert!(pos("--tmpfs") < pos("/home/ada/.claude"));
    // Root is remounted read-only after every mount.
    let remount = pos("--remount-ro");
    assert!(remount > pos("/home/ada/.claude"));
}

#[test]
fn env_is_passed_outside_argv() {
    let p = plan(Network::None, 1000);
    assert!(!args(&p)
        .iter()
        .any(|a| a.contains("HOME=") || a == "--setenv"));
    assert!(p.env.iter().any(|(k, v)| k == "HOME" && v == "/home/ada"));
}

#[test]
fn missing_helpers_fail_closed() {
    let b = Bwrap {
        bwrap: Some("/usr/bin/bwrap".into()),
        pasta: None,
        systemd_run: None,
        runtime_dir: None,
        limits: None,
    };
    let e = b
        .plan(&prepared(Network::Open, 1000))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("needs pasta") && e.contains("--network none"),
        "{e}"
    );
    assert!(b.plan(&prepared(Network::None, 1000)).is_ok());
    let b = Bwrap {
        bwrap: None,
        pasta: None,
        systemd_run: None,
        runtime_dir: None,
        limits: None,
    };
    let e = b
        .plan(&prepared(Network::None, 1000))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("apt-get install bubblewrap"), "{e}");
}

#[test]
fn loopback_resolver_gets_a_dns_forward() {
    let mut run = prepared(Network::Open, 1000);
    run.dns_forward = Some(crate::dns::FORWARD_ADDR.into());
    let p = backend().plan(&run).unwrap_or_else(|e| panic!("{e}"));
    let net = p.network.unwrap_or_else(|| panic!("no network setup"));
    let args: Vec<String> = net
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        args.join(" ").ends_with("--dns-forward 169.254.1.53"),
        "{args:?}"
    );
}

#[test]
fn resources_without_a_scope_manager_are_refused() {
    let mut run = prepared(Network::None, 1000);
    run.spec.resources.memory_mb = Some(256);
    // Locating detects the host's support only when limits are asked for.
    let env = [("PATH".to_owned(), "/nonexistent".to_owned())]
        .into_iter()
        .collect();
    let mut at = crate::backend::Locate {
        env: &env,
        uid: 1000,
        project: std::path::Path::new("/tmp"),
        resources: Default::default(),
    };
    assert_eq!(Bwrap::locate_for(&at).limits, None);
    at.resources = run.spec.resources;
    assert!(Bwrap::locate_for(&at).limits.is_some());
    // On a host without systemd-run, the refusal says why.
    let host = crate::backend::limits::Host {
        systemd_run: None,
        uid: 1000,
        runtime_dir: None,
        cgroup2: std::path::Path::new("/nonexistent"),
        system_socket: std::path::Path::new("/nonexistent"),
    };
    let located = Bwrap {
        limits: Some(crate::backend::limits::detect(&host, &run.spec.resources)),
        ..backend()
    };
    let e = Bwrap {
        limits: located.limits,
        ..backend()
    }
    .plan(&run)
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.contains("[resources] limits cannot be enforced for bubblewrap here: systemd-run is not installed"),
        "{e}"
    );
    assert!(e.contains("remove [resources]"), "{e}");
}

#[test]
fn resources_on_a_backend_located_without_them_are_refused() {
    let mut run = prepared(Network::None, 1000);
    run.spec.resources.pids = Some(64);
    let e = backend()
        .plan(&run)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("the host was not checked for them"), "{e}");
}

#[test]
fn argv_with_forwards() {
    let mut run = prepared(Network::Open, 1000);
    run.spec.forward = wrapix_spec::Forward {
        display: Some(wrapix_spec::Display::Xvfb),
        ssh_agent: Some(wrapix_spec::SshAgent::Host),
        git_config: false,
        ports: vec![wrapix_spec::Port {
            host_address: wrapix_spec::Port::LOOPBACK,
            host: 8080,
            sandbox: 3000,
        }],
        ..Default::default()
    };
    // What forward::start provides, as prepare adds it: after every other bind.
    let mut fw = crate::forward::Provided::default();
    crate::forward::x11::provide(
        &crate::forward::x11::Display {
            number: 0,
            socket: "/run/user/1000/wrapix/sandboxes/proj-1/x11/X0".into(),
            xauthority: Some(b"cookie".to_vec()),
        },
        &mut fw,
    );
    fw.binds.push(Bind {
        source: "/run/user/1000/keyring/ssh".into(),
        dest: SandboxPath::from_static(crate::forward::SANDBOX_SSH_AUTH_SOCK),
        mode: MountMode::ReadOnly,
    });
    run.binds.extend(fw.binds);
    run.files.extend(fw.files);
    run.env.extend(fw.env);
    let p = backend().plan(&run).unwrap_or_else(|e| panic!("plan: {e}"));
    insta::assert_snapshot!(p.render());
    let env: Vec<String> = p
        .env
        .iter()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    assert!(env.contains(&"DISPLAY=:0".to_owned()), "{env:?}");
    assert!(
        env.contains(&"XAUTHORITY=/run/wrapix/Xauthority".to_owned()),
        "{env:?}"
    );
    let net = p.network.unwrap_or_else(|| panic!("no network setup"));
    let args: Vec<String> = net
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        args.join(" "),
        "--config-net --quiet --no-map-gw -t 127.0.0.1/8080:3000 -u none -T none -U none",
        "only the published port, on loopback, inbound; nothing else either way"
    );
}

#[test]
fn argv_with_wayland_audio_dbus_nix_gpu() {
    let mut run = prepared(Network::None, 1000);
    run.spec.forward = wrapix_spec::Forward {
        display: Some(wrapix_spec::Display::Wayland),
        audio: true,
        dbus: vec!["org.freedesktop.Notifications".into()],
        nix: true,
        gpu: true,
        ..Default::default()
    };
    // What forward::start provides on a host with PulseAudio, a session bus, Nix (with a
    // default profile) and a GPU (a fake listing of /dev/dri and /dev), as prepare adds it.
    let mut fw = crate::forward::Provided::default();
    fw.binds.push(Bind {
        source: "/run/user/1000/wayland-0".into(),
        dest: SandboxPath::from_static(crate::forward::wayland::SANDBOX_WAYLAND_SOCKET),
        mode: MountMode::ReadOnly,
    });
    fw.binds.push(Bind {
        source: "/run/user/1000/pulse/native".into(),
        dest: SandboxPath::from_static(crate::forward::audio::SANDBOX_PULSE_SOCKET),
        mode: MountMode::ReadOnly,
    });
    fw.env.insert(
        "PULSE_SERVER".into(),
        "unix:/run/wrapix/pulse/native".into(),
    );
    fw.binds.push(Bind {
        source: "/run/user/1000/wrapix/sandboxes/proj-1/dbus/bus".into(),
        dest: SandboxPath::from_static(crate::forward::dbus::SANDBOX_DBUS_SOCKET),
        mode: MountMode::ReadOnly,
    });
    crate::forward::nix::provide(
        crate::forward::nix::HostNix {
            default_profile: true,
        },
        &mut fw,
    );
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    fw.devices = crate::forward::gpu::devices(
        &names(&["card0", "renderD128"]),
        &names(&["null", "nvidia0", "nvidiactl", "tty"]),
    );
    run.binds.extend(fw.binds);
    run.devices.extend(fw.devices);
    run.env.extend(fw.env);
    let p = backend().plan(&run).unwrap_or_else(|e| panic!("plan: {e}"));
    insta::assert_snapshot!(p.render());
    let argv = args(&p).join(" ");
    assert!(
        argv.contains("--dev-bind /dev/dri/renderD128 /dev/dri/renderD128"),
        "{argv}"
    );
    assert!(!argv.contains("card0"), "only render nodes: {argv}");
    assert!(argv.contains("--ro-bind /nix/store /nix/store"), "{argv}");
    let env: Vec<String> = p
        .env
        .iter()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    assert!(env.contains(&"NIX_REMOTE=daemon".to_owned()), "{env:?}");
}
