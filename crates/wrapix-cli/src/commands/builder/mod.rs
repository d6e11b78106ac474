//! `wrapix builder start|stop|status|ssh|config|setup` (docs/builder.md): a long-running
//! container with sshd and a Nix daemon for Nix remote builds (`ssh-ng://`), from wrapix's own
//! `builder` image, with a persistent store and keys generated once. On Linux rootless podman
//! runs it (the store is a folder); on macOS Apple's `container` (the store is a named
//! volume), chosen by `WRAPIX_BUILDER_ENGINE` (`podman` or `apple`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wrapix_sandbox::backend::find_program;

use super::Failure;
use crate::cli::BuilderCmd;
use crate::context::{host_env, host_user, state_root};
use crate::{EXIT_NO_SANDBOX, EXIT_USAGE};

pub mod plan;

use plan::{Paths, Snippets, DEFAULT_PORT, NAME, PORT_LABEL};

/// How long `start` waits for sshd's banner.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

struct Ctx {
    env: BTreeMap<String, String>,
    home: PathBuf,
    paths: Paths,
}

impl Ctx {
    fn new() -> Ctx {
        let env = host_env();
        let user = host_user(&env);
        let paths = Paths::new(&state_root(&user, &env));
        Ctx {
            home: user.home,
            paths,
            env,
        }
    }

    fn program(&self, name: &str) -> Option<PathBuf> {
        find_program(name, self.env.get("PATH").map(String::as_str))
    }

    /// The program that runs the container: `WRAPIX_BUILDER_ENGINE` (`podman`, `apple`),
    /// by default podman on Linux and Apple's `container` on macOS.
    fn engine(&self) -> Result<Engine, Failure> {
        let default = if cfg!(target_os = "macos") {
            "apple"
        } else {
            "podman"
        };
        match self
            .env
            .get("WRAPIX_BUILDER_ENGINE")
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .unwrap_or(default)
        {
            "podman" => self.program("podman").map(Engine::Podman).ok_or_else(|| {
                Failure::new(
                    EXIT_NO_SANDBOX,
                    "podman is not installed, and the builder runs in a rootless podman container (fix: sudo apt-get install podman uidmap slirp4netns)",
                )
            }),
            "apple" => self.program("container").map(Engine::Apple).ok_or_else(|| {
                Failure::new(
                    EXIT_NO_SANDBOX,
                    "Apple's container CLI is not installed, and the builder runs in a container VM (fix: install it from https://github.com/apple/container/releases, then `container system start`)",
                )
            }),
            other => Err(Failure::usage(format!(
                "WRAPIX_BUILDER_ENGINE={other:?} is not an engine (fix: \"podman\" (Linux) or \"apple\" (macOS), or unset it)"
            ))),
        }
    }

    /// The port of the last start, else [`DEFAULT_PORT`].
    fn saved_port(&self) -> Result<u16, Failure> {
        match std::fs::read_to_string(&self.paths.state) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DEFAULT_PORT),
            Err(e) => Err(Failure::failed(format!(
                "cannot read {}: {e}",
                self.paths.state.display()
            ))),
            Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("port")?.as_u64())
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| {
                    Failure::failed(format!(
                        "{} is corrupt (expected {{\"port\": N}}); delete it and start the builder again",
                        self.paths.state.display()
                    ))
                }),
        }
    }
}

pub fn builder(cmd: BuilderCmd) -> Result<i32, Failure> {
    let ctx = Ctx::new();
    match cmd {
        BuilderCmd::Start { port } => start(&ctx, port),
        BuilderCmd::Stop => stop(&ctx),
        BuilderCmd::Status { json } => status(&ctx, json),
        BuilderCmd::Ssh { command } => ssh(&ctx, &command),
        BuilderCmd::Config => config(&ctx),
        BuilderCmd::Setup => setup(&ctx),
    }
}

/// The container CLI that runs the builder.
enum Engine {
    Podman(PathBuf),
    /// Apple's `container`.
    Apple(PathBuf),
}

impl Engine {
    fn program(&self) -> &Path {
        match self {
            Engine::Podman(p) | Engine::Apple(p) => p,
        }
    }

    fn command(&self) -> Command {
        Command::new(self.program())
    }

    fn inspect(&self) -> Result<Option<Container>, Failure> {
        match self {
            Engine::Podman(p) => inspect(p),
            Engine::Apple(c) => {
                let out = run_checked(
                    Command::new(c).args(["list", "--all", "--format", "json"]),
                    "list the containers (`container list --all --format json`)",
                )?;
                Ok(plan::parse_apple_list(&out)
                    .map_err(Failure::failed)?
                    .map(|(running, port)| Container { running, port }))
            }
        }
    }

    /// Removes the container, running or not.
    fn remove(&self) -> Result<(), Failure> {
        let args: &[&str] = match self {
            Engine::Podman(_) => &["rm", "--force", "--ignore", NAME],
            Engine::Apple(_) => &["delete", "--force", NAME],
        };
        run_checked(self.command().args(args), "remove the builder container").map(drop)
    }

    fn stop(&self) -> Result<(), Failure> {
        run_checked(
            self.command().args(["stop", "--time", "10", NAME]),
            "stop the builder container",
        )
        .map(drop)
    }

    /// The last lines of the container's output (its errors).
    fn logs(&self) -> String {
        let args: &[&str] = match self {
            Engine::Podman(_) => &["logs", "--tail", "20", NAME],
            Engine::Apple(_) => &["logs", "-n", "20", NAME],
        };
        self.command()
            .args(args)
            .output()
            .map(|o| {
                let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&o.stderr));
                text
            })
            .unwrap_or_default()
    }

    /// Everything the container needs that lives outside it, then its `run` command line.
    fn prepare_run(&self, ctx: &Ctx, port: u16) -> Result<Vec<std::ffi::OsString>, Failure> {
        let image = super::images::ensure_builder_image(&ctx.env)?;
        match self {
            Engine::Podman(podman) => {
                // 0755: the login user inside must traverse /nix (the folder above is private).
                std::fs::create_dir_all(&ctx.paths.store)
                    .and_then(|()| {
                        std::fs::set_permissions(
                            &ctx.paths.store,
                            std::fs::Permissions::from_mode(0o755),
                        )
                    })
                    .map_err(|e| {
                        Failure::failed(format!("cannot create {}: {e}", ctx.paths.store.display()))
                    })?;
                Ok(plan::podman_run(podman, &image.rootfs(), &ctx.paths, port))
            }
            Engine::Apple(container) => {
                // `--mount` is comma-separated key=value pairs.
                if ctx
                    .paths
                    .share
                    .to_str()
                    .is_none_or(|p| p.contains([',', '=']))
                {
                    return Err(Failure::usage(format!(
                        "{} cannot be passed to container's --mount (it must be UTF-8 without `,` or `=`) (fix: set XDG_STATE_HOME to a plain folder)",
                        ctx.paths.share.display()
                    )));
                }
                // The share: copies of the host key and the user's public key, nothing else.
                create_private_dir(&ctx.paths.share)?;
                for (from, to) in [
                    (ctx.paths.host_key.clone(), "ssh_host_ed25519_key"),
                    (Paths::public(&ctx.paths.user_key), "authorized_keys"),
                ] {
                    let data = std::fs::read(&from).map_err(|e| {
                        Failure::failed(format!("cannot read {}: {e}", from.display()))
                    })?;
                    write_atomic(&ctx.paths.share.join(to), &data, 0o600)?;
                }
                let has_volume = self
                    .command()
                    .args(["volume", "inspect", plan::STORE_VOLUME])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if !has_volume {
                    run_checked(
                        self.command().args([
                            "volume",
                            "create",
                            "-s",
                            plan::STORE_VOLUME_SIZE,
                            plan::STORE_VOLUME,
                        ]),
                        "create the store volume",
                    )?;
                }
                let reference = format!("localhost/wrapix:{}", image.meta.hash);
                wrapix_sandbox::backend::apple::load_image(
                    container,
                    &image,
                    &reference,
                    &ctx.paths.dir,
                )
                .map_err(|e| Failure::new(EXIT_NO_SANDBOX, e.to_string()))?;
                Ok(plan::apple_run(container, &reference, &ctx.paths, port))
            }
        }
    }
}

/// What the engine knows of the container: `None` when there is none.
struct Container {
    running: bool,
    port: Option<u16>,
}

fn inspect(podman: &Path) -> Result<Option<Container>, Failure> {
    let out = Command::new(podman)
        .args(["container", "inspect", "--format"])
        .arg(format!(
            "{{{{.State.Running}}}} {{{{index .Config.Labels \"{PORT_LABEL}\"}}}}"
        ))
        .arg(NAME)
        .output()
        .map_err(|e| Failure::failed(format!("cannot run {}: {e}", podman.display())))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("no such") {
            return Ok(None);
        }
        return Err(Failure::failed(format!(
            "podman container inspect {NAME} failed: {}",
            stderr.trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    Ok(Some(Container {
        running: words.next() == Some("true"),
        port: words.next().and_then(|p| p.parse().ok()),
    }))
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<String, Failure> {
    let out = cmd
        .output()
        .map_err(|e| Failure::failed(format!("cannot {what}: {e}")))?;
    if !out.status.success() {
        return Err(Failure::failed(format!(
            "cannot {what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn create_private_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))
}

/// The host and user keys (ed25519, 0600), generated once; the pinned known_hosts line.
fn ensure_keys(ctx: &Ctx) -> Result<(), Failure> {
    create_private_dir(&ctx.paths.dir)?;
    for (key, comment) in [
        (&ctx.paths.host_key, "wrapix builder host key"),
        (&ctx.paths.user_key, "wrapix builder user key"),
    ] {
        let public = Paths::public(key);
        match (key.exists(), public.exists()) {
            (true, true) => continue,
            (false, false) => {}
            _ => {
                return Err(Failure::failed(format!(
                    "{} or its .pub is missing, but not both; delete what is left to generate a new key (clients must then trust the new one)",
                    key.display()
                )))
            }
        }
        let keygen = ctx.program("ssh-keygen").ok_or_else(|| {
            Failure::new(
                EXIT_NO_SANDBOX,
                "ssh-keygen is not installed (fix: sudo apt-get install openssh-client)",
            )
        })?;
        run_checked(
            Command::new(keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(key),
            &format!("generate {}", key.display()),
        )?;
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Failure::failed(format!("cannot chmod {}: {e}", key.display())))?;
        eprintln!("wrapix: generated {}", key.display());
    }
    let line = host_key_line(&ctx.paths)?;
    write_atomic(
        &ctx.paths.known_hosts,
        format!("{NAME} {line}\n").as_bytes(),
        0o600,
    )
}

/// `ssh-ed25519 AAAA…` of the host key (no comment).
fn host_key_line(paths: &Paths) -> Result<String, Failure> {
    let public = Paths::public(&paths.host_key);
    let text = std::fs::read_to_string(&public).map_err(|e| {
        Failure::new(
            EXIT_USAGE,
            format!(
                "cannot read {}: {e} (fix: `wrapix builder start` generates the keys)",
                public.display()
            ),
        )
    })?;
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(kind @ "ssh-ed25519"), Some(key)) => Ok(format!("{kind} {key}")),
        _ => Err(Failure::failed(format!(
            "{} is not an ed25519 public key",
            public.display()
        ))),
    }
}

/// Temp file beside `path`, fsync, rename.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), Failure> {
    let err = |e: std::io::Error| Failure::failed(format!("cannot write {}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".wrapix-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(data).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

fn start(ctx: &Ctx, port: Option<u16>) -> Result<i32, Failure> {
    let engine = ctx.engine()?;
    let port = match port {
        Some(p) => p,
        None => ctx.saved_port()?,
    };
    if let Some(c) = engine.inspect()? {
        if c.running {
            let at = c
                .port
                .map(|p| format!(" on 127.0.0.1:{p}"))
                .unwrap_or_default();
            eprintln!("wrapix: the builder is already running{at} (`wrapix builder stop` first to change it)");
            return Ok(0);
        }
        // Left over from a stop that did not finish, or a crash.
        engine.remove()?;
    }
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).map_err(|e| {
        Failure::new(
            EXIT_USAGE,
            format!("port {port} on 127.0.0.1 is not free ({e}); another program (or another user's builder) has it (fix: wrapix builder start --port N)"),
        )
    })?;
    ensure_keys(ctx)?;
    let argv = engine.prepare_run(ctx, port)?;
    run_checked(
        Command::new(&argv[0]).args(&argv[1..]),
        "start the builder container",
    )?;
    write_atomic(
        &ctx.paths.state,
        format!("{{\"port\": {port}}}\n").as_bytes(),
        0o600,
    )?;
    if let Err(e) = wait_ready(&engine, port) {
        let logs = engine.logs();
        let _ = engine.remove();
        return Err(Failure::failed(format!(
            "the builder did not become ready: {e}{}",
            if logs.trim().is_empty() {
                String::new()
            } else {
                format!("\ncontainer log:\n{}", logs.trim_end())
            }
        )));
    }
    let store = match engine {
        Engine::Podman(_) => ctx.paths.store.display().to_string(),
        Engine::Apple(_) => format!("the volume {}", plan::STORE_VOLUME),
    };
    eprintln!("wrapix: the builder is running: sshd on 127.0.0.1:{port}, store {store} (next: `wrapix builder setup`, `wrapix builder config`)");
    Ok(0)
}

/// Ready when sshd answers with its banner through the published port (podman's port
/// forwarder accepts connections before sshd listens, so a connect alone proves nothing).
fn wait_ready(engine: &Engine, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut banner = [0u8; 4];
            if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                return Ok(());
            }
        }
        match engine.inspect() {
            Ok(Some(c)) if c.running => {}
            Ok(_) => return Err("the container exited".into()),
            Err(e) => return Err(e.message),
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no SSH banner on 127.0.0.1:{port} after {} s",
                READY_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(ctx: &Ctx) -> Result<i32, Failure> {
    let engine = ctx.engine()?;
    if engine.inspect()?.is_none() {
        eprintln!("wrapix: the builder is not running");
        return Ok(0);
    }
    engine.stop()?;
    engine.remove()?;
    let store = match engine {
        Engine::Podman(_) => String::new(),
        Engine::Apple(_) => format!(" and the volume {}", plan::STORE_VOLUME),
    };
    eprintln!(
        "wrapix: the builder stopped; its store and keys stay in {}{store}",
        ctx.paths.dir.display()
    );
    Ok(0)
}

/// `SHA256:…` of a public key, by `ssh-keygen -l`.
fn fingerprint(ctx: &Ctx, key: &Path) -> Option<String> {
    let public = Paths::public(key);
    if !public.exists() {
        return None;
    }
    let out = Command::new(ctx.program("ssh-keygen")?)
        .arg("-lf")
        .arg(&public)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
}

/// Bytes on disk under `dir` (links not followed); 0 when it does not exist.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            total += m.blocks() * 512;
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    total
}

fn status(ctx: &Ctx, json: bool) -> Result<i32, Failure> {
    let engine = ctx.engine()?;
    let container = engine.inspect()?;
    let running = container.as_ref().is_some_and(|c| c.running);
    let port = match container.as_ref().and_then(|c| c.port) {
        Some(p) => p,
        None => ctx.saved_port()?,
    };
    // Apple: a named volume, whose use only the VM sees.
    let (store, store_bytes) = match engine {
        Engine::Podman(_) => (
            ctx.paths.store.display().to_string(),
            Some(disk_usage(&ctx.paths.store)),
        ),
        Engine::Apple(_) => (format!("volume:{}", plan::STORE_VOLUME), None),
    };
    let host_fp = fingerprint(ctx, &ctx.paths.host_key);
    let user_fp = fingerprint(ctx, &ctx.paths.user_key);
    if json {
        let v = serde_json::json!({
            "running": running,
            "container": NAME,
            "address": format!("127.0.0.1:{port}"),
            "port": port,
            "user": plan::USER,
            "engine": match engine {
                Engine::Podman(_) => "podman",
                Engine::Apple(_) => "apple",
            },
            "store": store,
            "store_bytes": store_bytes,
            "host_key": ctx.paths.host_key,
            "host_key_fingerprint": host_fp,
            "user_key": ctx.paths.user_key,
            "user_key_fingerprint": user_fp,
        });
        println!("{v:#}");
    } else {
        let none = || "(not generated: `wrapix builder start`)".to_owned();
        println!(
            "builder    {}",
            if running {
                format!("running (container {NAME})")
            } else {
                "stopped".to_owned()
            }
        );
        println!(
            "ssh        {}@127.0.0.1:{port}{}",
            plan::USER,
            if running { "" } else { " (when running)" }
        );
        match store_bytes {
            Some(b) => println!("store      {store} ({:.1} MB)", b as f64 / 1e6),
            None => println!("store      {store}"),
        }
        println!("host key   {}", host_fp.unwrap_or_else(none));
        println!("user key   {}", user_fp.unwrap_or_else(none));
    }
    Ok(0)
}

fn running_port(ctx: &Ctx) -> Result<u16, Failure> {
    match ctx.engine()?.inspect()? {
        Some(Container {
            running: true,
            port,
        }) => match port {
            Some(p) => Ok(p),
            None => ctx.saved_port(),
        },
        _ => Err(Failure::new(
            EXIT_USAGE,
            "the builder is not running (fix: wrapix builder start)",
        )),
    }
}

fn ssh(ctx: &Ctx, command: &[String]) -> Result<i32, Failure> {
    use std::os::unix::process::CommandExt;
    let port = running_port(ctx)?;
    let ssh = ctx.program("ssh").ok_or_else(|| {
        Failure::new(
            EXIT_NO_SANDBOX,
            "ssh is not installed (fix: sudo apt-get install openssh-client)",
        )
    })?;
    let argv = plan::ssh_argv(&ssh, &ctx.paths, port, command);
    let err = Command::new(&argv[0]).args(&argv[1..]).exec();
    Err(Failure::new(
        127,
        format!("cannot run {}: {err}", ssh.display()),
    ))
}

fn snippets_text(ctx: &Ctx, f: impl FnOnce(&Snippets<'_>) -> String) -> Result<String, Failure> {
    let line = host_key_line(&ctx.paths)?;
    let system = plan::system();
    let s = Snippets {
        paths: &ctx.paths,
        port: ctx.saved_port()?,
        host_key_line: &line,
        system: &system,
        max_jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    Ok(f(&s))
}

fn config(ctx: &Ctx) -> Result<i32, Failure> {
    print!("{}", snippets_text(ctx, |s| s.config())?);
    Ok(0)
}

/// Writes the Host block into ~/.ssh/config (atomically, a backup of the old file beside it)
/// and prints what only root can do.
fn setup(ctx: &Ctx) -> Result<i32, Failure> {
    let block = snippets_text(ctx, |s| s.host_block())?;
    let machine = snippets_text(ctx, |s| s.machine())?;
    let ssh_dir = ctx.home.join(".ssh");
    if !ssh_dir.exists() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&ssh_dir)
            .map_err(|e| Failure::failed(format!("cannot create {}: {e}", ssh_dir.display())))?;
    }
    let file = ssh_dir.join("config");
    let meta = match std::fs::symlink_metadata(&file) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Failure::failed(format!(
                "cannot read {}: {e}",
                file.display()
            )))
        }
    };
    if meta.as_ref().is_some_and(|m| !m.is_file()) {
        return Err(Failure::failed(format!(
            "{} is not a regular file (a link?); add this block to it by hand:\n{block}",
            file.display()
        )));
    }
    let old = match &meta {
        Some(_) => std::fs::read_to_string(&file)
            .map_err(|e| Failure::failed(format!("cannot read {}: {e}", file.display())))?,
        None => String::new(),
    };
    match plan::merge_ssh_config(&old, &block)
        .map_err(|e| Failure::failed(format!("{}: {e}", file.display())))?
    {
        None => eprintln!(
            "wrapix: {} already has the builder's Host block",
            file.display()
        ),
        Some(new) => {
            let mode = meta
                .as_ref()
                .map_or(0o600, |m| m.permissions().mode() & 0o777);
            if meta.is_some() {
                let backup = ssh_dir.join("config.wrapix-backup");
                write_atomic(&backup, old.as_bytes(), mode)?;
                eprintln!("wrapix: saved the previous file as {}", backup.display());
            }
            write_atomic(&file, new.as_bytes(), mode)?;
            eprintln!(
                "wrapix: wrote the Host block `{NAME}` into {} (try: ssh {NAME} nix-store --version)",
                file.display()
            );
        }
    }
    println!("# What needs root: the Nix daemon (root) opens the connection, and it reads neither");
    println!(
        "# your ~/.ssh/config nor your nix.conf. Run these yourself (wrapix never runs sudo):"
    );
    println!("sudo mkdir -p /etc/ssh/ssh_config.d");
    println!("sudo tee /etc/ssh/ssh_config.d/{NAME}.conf >/dev/null <<'EOF'\n{block}EOF");
    println!(
        "grep -qxF {m} /etc/nix/machines 2>/dev/null || echo {m} | sudo tee -a /etc/nix/machines >/dev/null",
        m = plan::shell_quote(&machine)
    );
    println!("# then restart the Nix daemon (nix-darwin: see `wrapix builder config`).");
    Ok(0)
}
