//! The whole `container run` argv and the entrypoint, pinned, for representative runs; the
//! refusals (not a Mac, `network = "none"`, paths `--mount` cannot take); and the entrypoint
//! run under Linux `sh` with fake `mount`/`setpriv` and a fake VM root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wrapix_spec::{
    Agent, AgentHome, BackendKind, HostUser, MountMode, Network, Profile, Resources, SandboxPath,
    Spec,
};

use super::*;
use crate::prepare::{Bind, GeneratedFile, Prepared};
use crate::root::RootFs;

fn prepared(network: Network, resources: Resources) -> Prepared {
    let ws = SandboxPath::from_static("/workspace");
    let home = SandboxPath::from_static("/Users/ada");
    let spec = Spec {
        project: "/Users/ada/proj".into(),
        backend: BackendKind::Named("apple"),
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
        forward: Default::default(),
        require_kvm: false,
        resources,
        mcp: Default::default(),
        user: HostUser {
            uid: 501,
            gid: 20,
            name: "ada".into(),
            home: "/Users/ada".into(),
        },
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
            image: Some("/Users/ada/.local/share/wrapix/images/0123abcd/rootfs".into()),
        },
        home: home.clone(),
        home_source: None,
        devices: Vec::new(),
        pinned: Vec::new(),
        binds: vec![
            bind("/Users/ada/proj", ws.clone(), MountMode::ReadWrite),
            bind(
                "/Users/ada/proj/.git",
                ws.join(".git"),
                MountMode::ReadWrite,
            ),
            bind(
                "/Users/ada/proj/.git/hooks",
                ws.join(".git/hooks"),
                MountMode::ReadOnly,
            ),
            bind(
                "/Users/ada/proj/wrapix.toml",
                ws.join("wrapix.toml"),
                MountMode::ReadOnly,
            ),
            // A user mount of one file (virtio-fs: through its folder).
            bind(
                "/Users/ada/.cargo/config.toml",
                home.join(".cargo/config.toml"),
                MountMode::ReadOnly,
            ),
            // The deploy key, a file too.
            bind(
                "/Users/ada/.ssh/deploy_keys/proj",
                home.join(".ssh/deploy_keys/proj"),
                MountMode::ReadOnly,
            ),
            bind(
                "/Users/ada/.local/state/wrapix/projects/proj-0123456789abcdef/claude",
                home.join(".claude"),
                MountMode::ReadWrite,
            ),
        ],
        files: vec![
            GeneratedFile {
                dest: SandboxPath::from_static("/etc/passwd"),
                contents: b"root:x:0:0::/root:/bin/sh\nada:x:501:20::/Users/ada:/bin/sh\n".to_vec(),
                writable: false,
            },
            GeneratedFile {
                dest: SandboxPath::from_static("/etc/resolv.conf"),
                contents: b"nameserver 169.254.1.53\n".to_vec(),
                writable: false,
            },
            GeneratedFile {
                dest: home.join(".gitconfig"),
                contents: b"[user]\n\tname = Ada\n".to_vec(),
                writable: true,
            },
            GeneratedFile {
                dest: home.join(".ssh/known_hosts"),
                contents: b"github.com ssh-ed25519 AAAA\n".to_vec(),
                writable: false,
            },
        ],
        env: [
            ("HOME".to_owned(), "/Users/ada".to_owned()),
            (
                "WRAPIX_NOTIFY_SOCKET".to_owned(),
                "/run/wrapix/notify.sock".to_owned(),
            ),
        ]
        .into(),
        command: vec!["claude".into(), "--dangerously-skip-permissions".into()],
        network: network.clone(),
        dns_forward: None,
        terminal: true,
        self_exe: "/opt/homebrew/bin/wrapix".into(),
        init_exe: None,
        serve_exe: None,
        etc: None,
        notices: vec![],
        after_exit: vec![],
    }
}

fn fake_kind(p: &Path) -> Option<SourceKind> {
    let s = p.to_string_lossy();
    if s.contains("missing") {
        None
    } else if s.ends_with(".toml") || s.contains("deploy_keys/") {
        Some(SourceKind::File)
    } else {
        Some(SourceKind::Dir)
    }
}

fn backend() -> Apple {
    Apple {
        container: Some("/usr/local/bin/container".into()),
        on_macos: true,
        stage: "/Users/ada/.local/state/wrapix/apple/run-501/wrapix-proj-42".into(),
        name: "wrapix-proj-42".into(),
        dns: vec!["192.168.1.1".parse().unwrap_or_else(|e| panic!("{e}"))],
        linux_bin: Some("/Users/ada/.local/share/wrapix/linux-bin".into()),
        host_env: vec![("HOME".into(), "/Users/ada".into())],
        kind: fake_kind,
    }
}

fn limits() -> Resources {
    Resources {
        cpus: Some(4),
        memory_mb: Some(8192),
        pids: Some(1024),
    }
}

#[test]
fn argv_network_open_with_limits() {
    let p = backend()
        .plan(&prepared(Network::Open, limits()))
        .unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(p.render());
}

#[test]
fn argv_defaults_without_dns_or_linux_wrapix() {
    let mut b = backend();
    b.dns.clear();
    b.linux_bin = None;
    let mut run = prepared(Network::Open, Resources::default());
    run.terminal = false;
    let p = b.plan(&run).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(p.render());
}

#[test]
fn entrypoint_script() {
    let (_, ep) = backend()
        .build(&prepared(Network::Open, limits()))
        .unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(ep.render());
}

#[test]
fn the_file_folders_are_shared_read_only_and_detached() {
    let (a, ep) = backend()
        .build(&prepared(Network::Open, limits()))
        .unwrap_or_else(|e| panic!("{e}"));
    let a: Vec<String> = a.iter().map(|x| x.to_string_lossy().into_owned()).collect();
    for staging in ["/mnt/wrapix/file-0", "/mnt/wrapix/file-1"] {
        assert!(
            a.iter()
                .any(|x| x.contains(&format!("target={staging},readonly"))),
            "{staging}: {a:?}"
        );
        assert!(ep.detach.iter().any(|d| d == staging));
    }
    // Protected paths in the workspace: bound read-only inside the VM, never shared again.
    assert!(ep
        .binds
        .iter()
        .any(|b| b.to == "/workspace/.git/hooks" && b.read_only));
    assert!(!a.iter().any(|x| x.contains("target=/workspace/.git")));
    // Never the host's notification socket (a socket cannot cross virtio-fs).
    assert!(!a.iter().any(|x| x.contains("notify")));
}

#[test]
fn refused_off_macos_with_the_reason() {
    let mut b = backend();
    b.on_macos = false;
    let e = b
        .plan(&prepared(Network::Open, Resources::default()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("macOS 26"), "{e}");
    assert!(e.contains("--backend bwrap"), "{e}");
    let probe = b.probe();
    assert!(!probe.usable());
    assert!(probe.checks.iter().any(|c| c.detail.contains("not a Mac")));
}

#[test]
fn network_none_is_refused() {
    let e = backend()
        .plan(&prepared(Network::None, Resources::default()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("network = \"none\" cannot be expressed"), "{e}");
}

#[test]
fn bad_inputs_are_refused() {
    // A comma would split --mount's fields.
    let mut run = prepared(Network::Open, Resources::default());
    run.binds[0].source = "/Users/ada/a,b".into();
    let e = backend().plan(&run).err().map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("`,`")));
    let mut run = prepared(Network::Open, Resources::default());
    run.binds[4].source = "/Users/ada/x=y/config.toml".into();
    assert!(backend().plan(&run).is_err());
    // A missing mount source.
    let mut run = prepared(Network::Open, Resources::default());
    run.binds[4].source = "/Users/ada/missing".into();
    let e = backend().plan(&run).err().map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("does not exist")), "missing");
    // The host profile has no image.
    let mut run = prepared(Network::Open, Resources::default());
    run.root.image = None;
    let e = backend().plan(&run).err().map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("runs from an image")));
    // No CLI.
    let mut b = backend();
    b.container = None;
    let e = b
        .plan(&prepared(Network::Open, Resources::default()))
        .err()
        .map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("not installed")));
    // A line break in a variable cannot go in the env file.
    let mut run = prepared(Network::Open, Resources::default());
    run.env.insert("X".into(), "a\nB=evil".into());
    assert!(Apple::env_text(&run).is_err());
    // The Unix socket is not passed; TCP is set by the entrypoint.
    let env = Apple::env_text(&prepared(Network::Open, Resources::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!env.contains("WRAPIX_NOTIFY_SOCKET"), "{env}");
}

#[test]
fn resolvers_the_vm_cannot_reach_are_dropped() {
    let conf = "# x\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.1\nnameserver fd00::1\noptions edns0\n";
    let got: Vec<String> = reachable_resolvers(conf)
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(got, ["10.0.0.1", "fd00::1"]);
}

/// The entrypoint under Linux `sh`: a fake VM root (a folder), fake `mount`, `umount`,
/// `chown`, `prlimit` and `setpriv` that log their arguments (the last two run the
/// command), and a `/proc/net/route` whose default gateway is 192.168.64.1.
#[test]
fn entrypoint_runs_under_sh_with_a_fake_container() {
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = t.path().join("vm");
    let bin = t.path().join("bin");
    let log = t.path().join("log");
    let mk = |p: &Path| std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("{e}"));
    let put = |p: &Path, s: &str| {
        mk(p.parent().unwrap_or(Path::new("/")));
        std::fs::write(p, s).unwrap_or_else(|e| panic!("{e}"));
    };
    for d in ["workspace/.git/hooks", "mnt/wrapix/stage/files", "proc/net"] {
        mk(&root.join(d));
    }
    put(&root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    put(&root.join("etc/group"), "root:x:0:\n");
    put(
        &root.join("proc/net/route"),
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t0140A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t0040A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
    );
    let run = prepared(Network::Open, limits());
    let (_, mut ep) = backend().build(&run).unwrap_or_else(|e| panic!("{e}"));
    // The staged share, as Apple::stage writes it.
    for (i, f) in run.files.iter().enumerate() {
        put(
            &root.join(format!("mnt/wrapix/stage/files/{i}")),
            &String::from_utf8_lossy(&f.contents),
        );
    }
    ep.root = root.to_string_lossy().into_owned();
    let script = t.path().join("entrypoint.sh");
    put(&script, &ep.render());
    let logger = format!(
        "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> {}\n",
        log.display()
    );
    for fake in ["mount", "umount", "chown"] {
        put(&bin.join(fake), &logger);
    }
    // setpriv and prlimit: log, then run what follows `--` (setpriv) or the rest (prlimit).
    put(
        &bin.join("setpriv"),
        &format!("{logger}while [ \"$1\" != -- ]; do shift; done; shift; exec \"$@\"\n"),
    );
    put(
        &bin.join("prlimit"),
        &format!("{logger}shift; exec \"$@\"\n"),
    );
    for f in std::fs::read_dir(&bin)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o755));
    }
    let out = std::process::Command::new("sh")
        .arg(&script)
        .args([
            "sh",
            "-c",
            "pwd > \"$OUT\"; echo \"$WRAPIX_NOTIFY_TCP\" >> \"$OUT\"",
        ])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("OUT", t.path().join("out"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    let ran = read(&t.path().join("out"));
    assert_eq!(
        ran,
        format!("{}\n192.168.64.1:5959\n", root.join("workspace").display())
    );
    // The generated passwd has the user; the group was added.
    assert!(read(&root.join("etc/passwd")).contains("ada:x:501:20::/Users/ada"));
    assert!(read(&root.join("etc/group")).contains("ada:x:20:"));
    assert_eq!(
        read(&root.join("Users/ada/.gitconfig")),
        "[user]\n\tname = Ada\n"
    );
    assert!(root.join("Users/ada/.ssh/known_hosts").is_file());
    assert!(!root.join("etc/resolv.conf").exists());
    assert_eq!(
        std::fs::read_link(root.join("run/wrapix/bin/wrapix-notify")).ok(),
        Some(PathBuf::from("wrapix"))
    );
    let log = read(&log);
    let r = root.display();
    for want in [
        format!("mount --bind {r}/workspace/.git/hooks {r}/workspace/.git/hooks"),
        format!("mount -o remount,bind,ro {r}/workspace/.git/hooks"),
        format!("mount --bind {r}/mnt/wrapix/file-0/config.toml {r}/Users/ada/.cargo/config.toml"),
        format!("umount -l {r}/mnt/wrapix/file-0"),
        format!("chown 501:20 {r}/Users/ada"),
        format!("chown 501:20 {r}/Users/ada/.gitconfig"),
        "prlimit --nproc=1024:1024 setpriv".to_owned(),
        "setpriv --reuid=501 --regid=20 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- sh -c".to_owned(),
    ] {
        assert!(log.contains(&want), "{want}\n---\n{log}");
    }
    // The writable .git is not bound read-only.
    assert!(!log.contains(&format!("remount,bind,ro {r}/workspace/.git\n")));
}

#[test]
fn entrypoint_fails_closed_when_a_bind_fails() {
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = t.path().join("vm");
    std::fs::create_dir_all(root.join("etc")).unwrap_or_else(|e| panic!("{e}"));
    let ep = Entrypoint {
        root: root.to_string_lossy().into_owned(),
        uid: 501,
        gid: 20,
        user: "ada".into(),
        home: "/home/ada".into(),
        home_dirs: vec![],
        copies: vec![],
        binds: vec![InBind {
            from: "/workspace/x".into(),
            to: "/workspace/x".into(),
            read_only: true,
            create_file: false,
        }],
        detach: vec![],
        linux_bin: None,
        pids: None,
        notify_port: NOTIFY_PORT,
    };
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{e}"));
    for (name, body) in [
        ("mount", "exit 32"),
        ("chown", "exit 0"),
        ("setpriv", "exit 0"),
    ] {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
    }
    std::fs::write(root.join("etc/passwd"), "").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.join("etc/group"), "").unwrap_or_else(|e| panic!("{e}"));
    let script = t.path().join("e.sh");
    std::fs::write(&script, ep.render()).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new("sh")
        .arg(&script)
        .arg("true")
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot bind /workspace/x"));
}
