//! The whole qemu plan (the supervisor's and qemu's argv) and the guest's config, pinned.

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
        backend: BackendKind::Named("qemu"),
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
        user: HostUser {
            uid: 1000,
            gid: 1000,
            name: "ada".into(),
            home: "/home/ada".into(),
        },
        forward: Default::default(),
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
        devices: Vec::new(),
        pinned: Vec::new(),
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

fn backend() -> Qemu {
    Qemu {
        qemu: Some("/usr/bin/qemu-system-x86_64".into()),
        virtiofsd: Some("/usr/local/bin/virtiofsd".into()),
        pasta: Some("/usr/bin/pasta".into()),
        passt: Some("/usr/bin/passt".into()),
        kernel: Ok(Kernel {
            image: "/boot/vmlinuz-6.1.0-57-cloud-amd64".into(),
            modules: "/lib/modules/6.1.0-57-cloud-amd64".into(),
        }),
        kvm: false,
        require_kvm: false,
        stage: "/run/user/1000/wrapix-1000/qemu-42".into(),
        cache: "/home/ada/.cache/wrapix/qemu".into(),
        uid: 1000,
        keep_stage: false,
        timing: false,
    }
}

#[test]
fn plan_network_none() {
    let run = prepared(Network::None, Resources::default());
    let p = backend().plan(&run).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(p.render());
    let a: Vec<String> = p
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // No NIC at all, TCG here, the secret never on an argv.
    assert!(
        !a.iter()
            .any(|x| x.contains("netdev") || x.contains("virtio-net")),
        "{a:?}"
    );
    assert!(
        a.windows(2).any(|w| w[0] == "-accel" && w[1] == "tcg"),
        "{a:?}"
    );
    assert!(!a.iter().any(|x| x.contains("sk-secret")), "{a:?}");
    assert_eq!(p.signals, SignalTarget::Process);
    assert_eq!(p.program, PathBuf::from("/usr/bin/wrapix-init"));
    let config = serde_json::to_string_pretty(&layout(&run).config).unwrap_or_default();
    assert!(!config.contains("sk-secret"), "{config}");
    insta::assert_snapshot!("guest_config", config);
}

#[test]
fn plan_network_open() {
    let run = prepared(Network::Open, Resources::default());
    let p = backend().plan(&run).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(p.render());
    // pasta as for every backend (DNS forwarded, no ports, no gateway mapping), attached to
    // the holder's namespace while it waits; the guest's address is fixed.
    let net = p.network.clone().unwrap_or_else(|| panic!("no pasta"));
    let pasta: Vec<String> = net
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    for want in ["--no-map-gw", "--dns-forward"] {
        assert!(pasta.iter().any(|a| a == want), "{pasta:?}");
    }
    assert_eq!(p.block_fd, Some(NET_WAIT_FD));
    assert_eq!(
        p.pid_file,
        Some(PathBuf::from("/run/user/1000/wrapix-1000/qemu-42/net.pid"))
    );
    let a: Vec<String> = p
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        a.iter()
            .any(|x| *x == format!("socket,id=net0,fd={NET_FD}")),
        "{a:?}"
    );
    let config = layout(&run).config;
    assert_eq!(
        config.net,
        Some(GuestNet {
            address: "10.0.2.15".into(),
            prefix: 24,
            gateway: "10.0.2.2".into()
        })
    );
}

#[test]
fn kvm_when_usable_and_required_kvm_refuses_tcg() {
    let run = prepared(Network::None, Resources::default());
    let p = Qemu {
        kvm: true,
        ..backend()
    }
    .plan(&run)
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.args.windows(2).any(|w| w[0] == "-accel" && w[1] == "kvm"));
    let e = Qemu {
        require_kvm: true,
        ..backend()
    }
    .plan(&run)
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("WRAPIX_REQUIRE_KVM"), "{e}");
}

#[test]
fn refusals_name_the_fix() {
    let none = prepared(Network::None, Resources::default());
    let err =
        |b: Qemu, run: &Prepared| b.plan(run).err().map(|e| e.to_string()).unwrap_or_default();
    let e = err(
        Qemu {
            qemu: None,
            ..backend()
        },
        &none,
    );
    assert!(e.contains("apt-get install qemu-system-x86"), "{e}");
    let e = err(
        Qemu {
            virtiofsd: None,
            ..backend()
        },
        &none,
    );
    assert!(e.contains("cargo install virtiofsd"), "{e}");
    let e = err(
        Qemu {
            kernel: Err("no kernel".into()),
            ..backend()
        },
        &none,
    );
    assert!(e.contains("apt-get install linux-image-cloud-amd64"), "{e}");
    // `open` without passt: refused, never run unconfined.
    let open = prepared(Network::Open, Resources::default());
    let e = err(
        Qemu {
            passt: None,
            ..backend()
        },
        &open,
    );
    assert!(e.contains("apt-get install passt"), "{e}");
}

/// `[resources]`: vCPUs, the VM's memory above the limit, the limit itself and `pids` for the
/// guest's cgroup; published ports through a NIC of their own.
#[test]
fn resources_and_published_ports() {
    let limits = Resources {
        cpus: Some(2),
        memory_mb: Some(300),
        pids: Some(64),
    };
    let mut run = prepared(Network::Open, limits);
    run.spec.forward.ports.push(wrapix_spec::Port {
        host_address: "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
        host: 8080,
        sandbox: 3000,
    });
    // The notification folder: no share (a socket does not cross virtiofs), a relay in the
    // guest and the host's socket for the supervisor.
    run.binds.push(Bind {
        source: "/run/user/1000/wrapix/notify.d".into(),
        dest: SandboxPath::from_static(crate::prepare::SANDBOX_NOTIFY_DIR),
        mode: MountMode::ReadOnly,
    });
    let p = crate::backend::plan(&backend(), &run).unwrap_or_else(|e| panic!("{e}"));
    let a: Vec<String> = p
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let pair = |k: &str, v: &str| a.windows(2).any(|w| w[0] == k && w[1] == v);
    assert!(
        pair("--notify", "/run/user/1000/wrapix/notify.d/notify.sock"),
        "{a:?}"
    );
    assert!(
        !a.iter()
            .any(|x| x.ends_with(":/run/user/1000/wrapix/notify.d")),
        "{a:?}"
    );
    assert!(
        layout(&run).config.root.contains(&GuestMount::NotifyRelay {
            dest: "/run/wrapix/notify.d".into()
        }),
        "no relay"
    );
    assert!(pair("-smp", "2"), "{a:?}");
    assert!(pair("-m", "492M"), "{a:?}");
    assert!(
        a.iter()
            .any(|x| x.contains("memory-backend-memfd,id=mem,size=492M")),
        "{a:?}"
    );
    // Ports through a restricted user-mode NIC of their own; passt and pasta forward nothing.
    assert!(
        pair(
            "-netdev",
            "user,id=ports,restrict=on,ipv6=off,net=10.0.3.0/24,host=10.0.3.2,hostfwd=tcp:127.0.0.1:8080-10.0.3.15:3000"
        ),
        "{a:?}"
    );
    assert!(pair("--passt-arg", "--tcp-ports"), "{a:?}");
    assert!(!a.iter().any(|x| x.contains("8080:")), "{a:?}");
    let pasta: Vec<String> = p
        .network
        .clone()
        .unwrap_or_else(|| panic!("no pasta"))
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        pasta.windows(2).any(|w| w[0] == "-t" && w[1] == "none"),
        "{pasta:?}"
    );
    // IPv6 host addresses: refused with the fix.
    let mut v6 = run.clone();
    v6.spec.forward.ports[0].host_address = "::1".parse().unwrap_or_else(|e| panic!("{e}"));
    let e = backend()
        .plan(&v6)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("IPv6") && e.contains("127.0.0.1"), "{e}");
    let config = layout(&run).config;
    assert_eq!(
        config.ports_nic,
        Some(crate::vm::GuestNic {
            mac: "52:54:00:77:70:01".into(),
            address: "10.0.3.15".into(),
            prefix: 24
        })
    );
    assert_eq!(
        config.limits,
        crate::vm::GuestLimits {
            memory_mb: Some(300),
            pids: Some(64)
        }
    );
    // A config without limits (an older stage) still reads.
    let mut v = serde_json::to_value(&config).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("limits");
        o.remove("ports_nic");
    }
    let back: GuestConfig = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
    assert!(!back.limits.any());
}

#[test]
fn finds_the_newest_cloud_kernel_and_its_modules() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (boot, libm) = (dir.path().join("boot"), dir.path().join("modules"));
    for r in [
        "6.1.0-9-cloud-amd64",
        "6.1.0-57-cloud-amd64",
        "6.1.0-60-amd64",
    ] {
        std::fs::create_dir_all(libm.join(r)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(&boot).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(boot.join(format!("vmlinuz-{r}")), b"k").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(libm.join(r).join("modules.dep"), b"").unwrap_or_else(|e| panic!("{e}"));
    }
    let env = BTreeMap::new();
    let k = find_kernel(&env, &boot, &libm).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(k.image, boot.join("vmlinuz-6.1.0-57-cloud-amd64"));
    assert_eq!(k.modules, libm.join("6.1.0-57-cloud-amd64"));
    let e = find_kernel(&env, &dir.path().join("none"), &libm)
        .err()
        .unwrap_or_default();
    assert!(e.contains("cloud-amd64"), "{e}");
}

/// A backend that does not carry out forwards refuses them (the check is in
/// `backend::plan`, not in each backend, so a new one cannot drop them silently).
#[test]
fn forwards_are_refused_with_the_fix() {
    let mut run = prepared(Network::None, Resources::default());
    run.spec.forward.ssh_agent = Some(wrapix_spec::SshAgent::Host);
    let e = crate::backend::plan(&backend(), &run)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("qemu backend does not forward ssh_agent"), "{e}");
}

fn filtered_run() -> Prepared {
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
    run
}

/// A network allowlist: no passt NIC and nothing to wait for; the user-mode NIC, restricted,
/// whose one way out is the `guestfwd` that runs the relay to the proxy's socket on the host;
/// in the guest, PID 1 listens where every sandbox has the proxy's socket (no share of the
/// socket's folder: a socket does not cross virtiofs).
#[test]
fn plan_network_filtered() {
    let run = filtered_run();
    let p = crate::backend::plan(&backend(), &run).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(p.render());
    let a: Vec<String> = p
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let pair = |k: &str, v: &str| a.windows(2).any(|w| w[0] == k && w[1] == v);
    assert!(
        pair(
            "-netdev",
            "user,id=ports,restrict=on,ipv6=off,net=10.0.3.0/24,host=10.0.3.2,guestfwd=tcp:10.0.3.4:3128-cmd:'/usr/bin/wrapix-init' '__vm-egress' '--slots' '/run/user/1000/wrapix-1000/qemu-42' '/run/user/1000/wrapix/sandboxes/p-1/egress/proxy.sock'"
        ),
        "{a:?}"
    );
    assert_eq!(a.iter().filter(|x| *x == "-netdev").count(), 1, "{a:?}");
    assert!(
        !a.iter().any(|x| x.contains("passt") || x.contains("net0")),
        "{a:?}"
    );
    assert!(
        !a.iter().any(|x| x.contains("sandboxes/p-1/egress:")),
        "{a:?}"
    );
    assert_eq!((p.block_fd, &p.pid_file, &p.network), (None, &None, &None));
    let config = layout(&run).config;
    assert_eq!(config.net, None);
    assert!(config.ports_nic.is_some());
    assert!(config.root.contains(&GuestMount::EgressRelay {
        socket: "/run/wrapix/egress/proxy.sock".into(),
        to: "10.0.3.4:3128".into(),
    }));
}

#[test]
fn the_guestfwd_command_quotes_each_word_and_doubles_commas() {
    let words = ["/opt/my wrapix/it's,here", "__vm-egress"].map(std::ffi::OsStr::new);
    assert_eq!(
        guestfwd_cmd(&words).ok().as_deref(),
        Some("'/opt/my wrapix/it'\\''s,,here' '__vm-egress'")
    );
    let bad = ["/opt/a\nb"].map(std::ffi::OsStr::new);
    let e = guestfwd_cmd(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("control character"), "{e}");
    // Without the socket's folder bound, no VM runs (fail closed).
    let mut run = filtered_run();
    run.binds.pop();
    let e = crate::backend::plan(&backend(), &run)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("socket folder is not bound"), "{e}");
}
