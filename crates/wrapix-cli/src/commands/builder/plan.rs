//! The builder's pure parts: paths, the podman and Apple `container` command lines, the
//! container's entry script, reading `container list`'s JSON,
//! the ssh command line, the snippets `config` prints and the Host block `setup` writes.
//! Nothing here runs a program or touches a file (tested by comparing whole outputs).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The container's name (rootless podman: one per user) and the SSH host alias.
pub const NAME: &str = "wrapix-builder";
/// The login user inside (the original's `ssh-ng://builder@localhost:2222`).
pub const USER: &str = "builder";
/// The host port when none was given (the original's).
pub const DEFAULT_PORT: u16 = 2222;
/// The label that records the published port on the container.
pub const PORT_LABEL: &str = "wrapix.builder.port";
/// Where the user's public key is bound inside (sshd's `AuthorizedKeysFile`).
const AUTHORIZED_KEYS: &str = "/etc/ssh/wrapix_authorized_keys";
const HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key";
/// Apple `container`: the named volume that holds the store (ext4 in the VM: Nix needs a
/// case-sensitive file system with owners, which a macOS folder shared over virtio-fs is not).
pub const STORE_VOLUME: &str = "wrapix-builder-nix";
/// Its size when created (sparse: it takes what the store uses).
pub const STORE_VOLUME_SIZE: &str = "64G";
/// Apple `container`: where the folder with the two public-or-host files is shared
/// (virtio-fs shares folders, not single files).
const APPLE_SHARE: &str = "/mnt/wrapix-builder";

/// The builder's files: `$XDG_STATE_HOME/wrapix/builder` (0700).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
    /// sshd's host key (private; its `.pub` beside it).
    pub host_key: PathBuf,
    /// The key wrapix and the Nix daemon log in with (private; its `.pub` beside it).
    pub user_key: PathBuf,
    /// One line: the host key under the alias [`NAME`].
    pub known_hosts: PathBuf,
    /// The Nix store, mounted at `/nix`.
    pub store: PathBuf,
    /// `builder.json`: the port of the last start.
    pub state: PathBuf,
    /// Apple `container`: the folder shared with the VM, holding copies of the host key and
    /// the user's public key only (never the user's private key beside them).
    pub share: PathBuf,
}

impl Paths {
    pub fn new(state_root: &Path) -> Paths {
        let dir = state_root.join("builder");
        Paths {
            host_key: dir.join("ssh_host_ed25519_key"),
            user_key: dir.join("id_ed25519"),
            known_hosts: dir.join("known_hosts"),
            store: dir.join("nix"),
            state: dir.join("builder.json"),
            share: dir.join("share"),
            dir,
        }
    }

    pub fn public(key: &Path) -> PathBuf {
        let mut s = key.as_os_str().to_owned();
        s.push(".pub");
        PathBuf::from(s)
    }
}

/// The container's PID 1 (`sh -c`, a constant: nothing is interpolated). It writes sshd's
/// and Nix's configuration into the throw-away overlay, creates the login user, starts the
/// Nix daemon and waits for its socket, then runs sshd in the foreground and ends both on
/// SIGTERM (`podman stop`).
pub const ENTRY: &str = r#"set -eu
mkdir -p /run/sshd /etc/nix /nix/var/nix/daemon-socket
chmod 0755 /run/sshd
cat > /etc/nix/nix.conf <<'EOF'
build-users-group =
sandbox = false
trusted-users = root builder
experimental-features = nix-command
EOF
cat > /etc/ssh/wrapix_sshd_config <<'EOF'
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/wrapix_authorized_keys
AllowUsers builder
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowAgentForwarding no
AllowTcpForwarding no
X11Forwarding no
PermitTunnel no
PrintMotd no
EOF
id builder >/dev/null 2>&1 || useradd --create-home --shell /bin/sh --password '*' builder
nix-daemon &
nixd=$!
i=0
while [ ! -S /nix/var/nix/daemon-socket/socket ]; do
  i=$((i + 1))
  if [ "$i" -gt 300 ]; then echo "wrapix builder: nix-daemon did not create its socket" >&2; exit 1; fi
  kill -0 "$nixd" 2>/dev/null || { echo "wrapix builder: nix-daemon exited" >&2; exit 1; }
  sleep 0.1
done
/usr/sbin/sshd -D -e -f /etc/ssh/wrapix_sshd_config &
sshd=$!
trap 'kill "$sshd" "$nixd" 2>/dev/null; exit 0' TERM INT
wait "$sshd"
"#;

/// Apple `container`: what the entry does first. The keys come in through a shared folder
/// whose files keep the Mac user's owner, which sshd's checks reject; root-owned copies go
/// where [`ENTRY`]'s configuration expects them.
pub const APPLE_PRELUDE: &str = r#"install -m 0600 -o root -g root /mnt/wrapix-builder/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key
install -m 0644 -o root -g root /mnt/wrapix-builder/authorized_keys /etc/ssh/wrapix_authorized_keys
"#;

/// `container run …` (Apple's CLI) that starts the builder: detached, sshd published on
/// 127.0.0.1:PORT only, the store in the named volume [`STORE_VOLUME`], the share folder
/// read-only, the image loaded into `container`'s store as `image`.
pub fn apple_run(container: &Path, image: &str, paths: &Paths, port: u16) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![container.into()];
    let mut share = OsString::from("--mount=type=bind,source=");
    share.push(&paths.share);
    share.push(format!(",target={APPLE_SHARE},readonly"));
    for s in [
        "run".to_owned(),
        "--detach".to_owned(),
        format!("--name={NAME}"),
        format!("--label={PORT_LABEL}={port}"),
        format!("--publish=127.0.0.1:{port}:22"),
        format!("--volume={STORE_VOLUME}:/nix"),
    ] {
        a.push(s.into());
    }
    a.push(share);
    for s in [
        "--entrypoint=/bin/sh".to_owned(),
        image.to_owned(),
        "-c".to_owned(),
        format!("set -eu\n{APPLE_PRELUDE}{ENTRY}"),
    ] {
        a.push(s.into());
    }
    a
}

/// The builder's state in `container list --all --format json` (an array of containers,
/// each `{"configuration": {"id", "labels"}, "status"}`): `None` when it is not there.
pub fn parse_apple_list(json: &str) -> Result<Option<(bool, Option<u16>)>, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        format!("`container list --format json` printed something else than JSON ({e})")
    })?;
    let list = v
        .as_array()
        .ok_or("`container list --format json` printed no array")?;
    Ok(list
        .iter()
        .find(|c| c["configuration"]["id"].as_str() == Some(NAME))
        .map(|c| {
            let running = c["status"].as_str() == Some("running");
            let port = c["configuration"]["labels"][PORT_LABEL]
                .as_str()
                .and_then(|p| p.parse().ok());
            (running, port)
        }))
}

/// `podman run …` that starts the builder: detached, sshd published on 127.0.0.1:PORT only,
/// the image's root under a throw-away overlay, the store and the keys bound in.
pub fn podman_run(podman: &Path, rootfs: &Path, paths: &Paths, port: u16) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![podman.into()];
    let bind = |src: &Path, dst: &str, ro: bool| -> OsString {
        let mut s = src.as_os_str().to_owned();
        s.push(format!(":{dst}{}", if ro { ":ro" } else { "" }));
        s
    };
    let mut root = rootfs.as_os_str().to_owned();
    root.push(":O");
    for s in [
        "run",
        "--detach",
        "--name",
        NAME,
        "--hostname",
        NAME,
        "--label",
        &format!("{PORT_LABEL}={port}"),
        "--security-opt",
        "no-new-privileges",
        "--publish",
        &format!("127.0.0.1:{port}:22"),
    ] {
        a.push(s.into());
    }
    a.push("--volume".into());
    a.push(bind(&paths.store, "/nix", false));
    a.push("--volume".into());
    a.push(bind(&paths.host_key, HOST_KEY, true));
    a.push("--volume".into());
    a.push(bind(&Paths::public(&paths.user_key), AUTHORIZED_KEYS, true));
    // `--rootfs` makes the first operand the root folder instead of an image.
    a.push("--rootfs".into());
    a.push(root);
    for s in ["/bin/sh", "-c", ENTRY] {
        a.push(s.into());
    }
    a
}

/// POSIX single quotes: the remote shell sees exactly `arg`.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b))
    {
        return arg.to_owned();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// `ssh …` into the builder with the generated key and the pinned host key, ignoring the
/// user's ssh configuration. sshd hands the remote command to a shell as one string, so each
/// argument is quoted: the remote side runs exactly `command`.
pub fn ssh_argv(ssh: &Path, paths: &Paths, port: u16, command: &[String]) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![ssh.into(), "-F".into(), "none".into(), "-i".into()];
    a.push(paths.user_key.clone().into());
    let mut kh = OsString::from("UserKnownHostsFile=");
    kh.push(&paths.known_hosts);
    for o in [
        OsString::from("IdentitiesOnly=yes"),
        "IdentityAgent=none".into(),
        kh,
        "GlobalKnownHostsFile=/dev/null".into(),
        "StrictHostKeyChecking=yes".into(),
        format!("HostKeyAlias={NAME}").into(),
        "PasswordAuthentication=no".into(),
        "BatchMode=yes".into(),
        "LogLevel=ERROR".into(),
    ] {
        a.push("-o".into());
        a.push(o);
    }
    a.push("-p".into());
    a.push(port.to_string().into());
    a.push(format!("{USER}@127.0.0.1").into());
    if !command.is_empty() {
        a.push("--".into());
        let line: Vec<String> = command.iter().map(|c| shell_quote(c)).collect();
        a.push(line.join(" ").into());
    }
    a
}

/// What the snippets are made of.
#[derive(Debug, Clone)]
pub struct Snippets<'a> {
    pub paths: &'a Paths,
    pub port: u16,
    /// The host key line (`ssh-ed25519 AAAA…`, no comment).
    pub host_key_line: &'a str,
    /// `x86_64-linux`, `aarch64-linux`.
    pub system: &'a str,
    pub max_jobs: usize,
}

impl Snippets<'_> {
    /// The `/etc/nix/machines` entry (also the value of `builders =`).
    pub fn machine(&self) -> String {
        format!(
            "ssh-ng://{USER}@{NAME} {} {} {} 1 benchmark,big-parallel - {}",
            self.system,
            self.paths.user_key.display(),
            self.max_jobs,
            base64(format!("{}\n", self.host_key_line).as_bytes())
        )
    }

    /// The SSH Host block that maps [`NAME`] to 127.0.0.1:PORT (for the user, and for root,
    /// whose Nix daemon opens the connection).
    pub fn host_block(&self) -> String {
        format!(
            "Host {NAME}\n  HostName 127.0.0.1\n  Port {}\n  User {USER}\n  IdentityFile \"{}\"\n  IdentitiesOnly yes\n  HostKeyAlias {NAME}\n  UserKnownHostsFile \"{}\"\n  StrictHostKeyChecking yes\n",
            self.port,
            self.paths.user_key.display(),
            self.paths.known_hosts.display()
        )
    }

    /// Everything `wrapix builder config` prints.
    pub fn config(&self) -> String {
        let machine = self.machine();
        let host_key_b64 = base64(format!("{}\n", self.host_key_line).as_bytes());
        format!(
            "# nix.conf (/etc/nix/nix.conf, then restart the Nix daemon):\n\
             builders = {machine}\n\
             builders-use-substitutes = true\n\
             \n\
             # or the same entry as a line of /etc/nix/machines (with `builders = @/etc/nix/machines`):\n\
             {machine}\n\
             \n\
             # nix-darwin (configuration.nix):\n\
             nix.distributedBuilds = true;\n\
             nix.buildMachines = [{{\n\
             \x20 hostName = \"{NAME}\";\n\
             \x20 sshUser = \"{USER}\";\n\
             \x20 protocol = \"ssh-ng\";\n\
             \x20 systems = [ \"{system}\" ];\n\
             \x20 sshKey = \"{key}\";\n\
             \x20 publicHostKey = \"{host_key_b64}\";\n\
             \x20 maxJobs = {jobs};\n\
             \x20 supportedFeatures = [ \"benchmark\" \"big-parallel\" ];\n\
             }}];\n\
             programs.ssh.extraConfig = ''\n\
             {block}'';\n\
             \n\
             # ~/.ssh/config and root's (/etc/ssh/ssh_config.d/{NAME}.conf): `wrapix builder setup`\n\
             {block}",
            system = self.system,
            key = self.paths.user_key.display(),
            jobs = self.max_jobs,
            block = self.host_block(),
        )
    }
}

pub const BEGIN: &str =
    "# BEGIN wrapix builder (written by `wrapix builder setup`; replaced by it)";
pub const END: &str = "# END wrapix builder";

/// The user's ssh config with the builder's block: replaced where it is, else put first
/// (ssh takes the first value it finds for an option, so a `Host *` earlier in the file
/// would otherwise win). `None` when the file already has exactly this block.
pub fn merge_ssh_config(old: &str, block: &str) -> Result<Option<String>, String> {
    let ours = format!("{BEGIN}\n{block}{END}\n");
    let begin = old.lines().position(|l| l.trim_end() == BEGIN);
    let end = old.lines().position(|l| l.trim_end() == END);
    let new = match (begin, end) {
        (None, None) => {
            if old.is_empty() {
                ours
            } else {
                format!("{ours}\n{old}")
            }
        }
        (Some(b), Some(e)) if b < e => {
            let lines: Vec<&str> = old.lines().collect();
            let mut out = String::new();
            for l in &lines[..b] {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str(&ours);
            for l in &lines[e + 1..] {
                out.push_str(l);
                out.push('\n');
            }
            out
        }
        _ => {
            return Err(format!(
                "the file has an unmatched \"{BEGIN}\" / \"{END}\" pair; fix it by hand"
            ))
        }
    };
    Ok((new != old).then_some(new))
}

/// The Nix system of the builder: the host's CPU, Linux.
pub fn system() -> String {
    format!("{}-linux", std::env::consts::ARCH)
}

/// Standard base64 with padding (Nix's `publicHostKey`); one use, no crate for it.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(argv: &[OsString]) -> Vec<String> {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn paths() -> Paths {
        Paths::new(Path::new("/home/u/.local/state/wrapix"))
    }

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVkMjU1MTlrZXlrZXlrZXlrZXlrZXlrZXlrZXlrZXk";

    fn snippets(p: &Paths) -> Snippets<'_> {
        Snippets {
            paths: p,
            port: 2222,
            host_key_line: KEY,
            system: "x86_64-linux",
            max_jobs: 2,
        }
    }

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"\xff\xfe\n"), "//4K");
    }

    #[test]
    fn arguments_reach_the_remote_shell_unchanged() {
        assert_eq!(shell_quote("nix-store"), "nix-store");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's; rm -rf ~"), r"'it'\''s; rm -rf ~'");
        assert_eq!(shell_quote("$(id)"), "'$(id)'");
    }

    #[test]
    fn the_podman_command_publishes_on_loopback_only() {
        let p = paths();
        let argv = podman_run(
            Path::new("/usr/bin/podman"),
            Path::new("/img/rootfs"),
            &p,
            2200,
        );
        let s = strings(&argv);
        let mut shown = s[..s.len() - 1].join("\n");
        shown.push_str("\n<ENTRY>");
        assert_eq!(s.last().map(String::as_str), Some(ENTRY));
        insta::assert_snapshot!(shown);
    }

    #[test]
    fn the_apple_command_publishes_on_loopback_only_and_keeps_the_store_in_a_volume() {
        let p = Paths::new(Path::new("/Users/ada/.local/state/wrapix"));
        let argv = apple_run(
            Path::new("/usr/local/bin/container"),
            "localhost/wrapix:0123abcd",
            &p,
            2200,
        );
        let s = strings(&argv);
        let entry = s.last().unwrap();
        assert_eq!(entry, &format!("set -eu\n{APPLE_PRELUDE}{ENTRY}"));
        let mut shown = s[..s.len() - 1].join("\n");
        shown.push_str("\n<set -eu, APPLE_PRELUDE, ENTRY>");
        insta::assert_snapshot!(shown);
    }

    #[test]
    fn the_apple_list_is_read_for_the_builder_alone() {
        let list = r#"[
          {"configuration": {"id": "other", "labels": {}}, "status": "running"},
          {"configuration": {"id": "wrapix-builder", "labels": {"wrapix.builder.port": "2201"}},
           "status": "running", "networks": []}
        ]"#;
        assert_eq!(parse_apple_list(list), Ok(Some((true, Some(2201)))));
        let stopped =
            r#"[{"configuration": {"id": "wrapix-builder", "labels": {}}, "status": "stopped"}]"#;
        assert_eq!(parse_apple_list(stopped), Ok(Some((false, None))));
        assert_eq!(parse_apple_list("[]"), Ok(None));
        assert_eq!(
            parse_apple_list(r#"[{"configuration": {"id": "other"}, "status": "running"}]"#),
            Ok(None)
        );
        for bad in ["", "{}", "not json"] {
            assert!(parse_apple_list(bad).is_err(), "{bad}");
        }
    }

    /// The prelude and the entry together are valid `sh`.
    #[test]
    fn the_apple_entry_parses() {
        let out = std::process::Command::new("/bin/sh")
            .args(["-n", "-c", &format!("set -eu\n{APPLE_PRELUDE}{ENTRY}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    #[test]
    fn ssh_uses_only_the_generated_key_and_pinned_host_key() {
        let p = paths();
        let argv = ssh_argv(
            Path::new("/usr/bin/ssh"),
            &p,
            2222,
            &["nix-store".into(), "--add".into(), "a file".into()],
        );
        let s = strings(&argv);
        insta::assert_snapshot!(s.join("\n"));
    }

    #[test]
    fn config_snippets() {
        let p = paths();
        insta::assert_snapshot!(snippets(&p).config());
    }

    #[test]
    fn the_ssh_config_block_goes_first_and_is_replaced_in_place() {
        let p = paths();
        let block = snippets(&p).host_block();
        let first = merge_ssh_config("", &block).unwrap().unwrap();
        assert!(first.starts_with(BEGIN));
        assert_eq!(merge_ssh_config(&first, &block).unwrap(), None);
        let user = "Host *\n  User me\n";
        let merged = merge_ssh_config(user, &block).unwrap().unwrap();
        assert!(
            merged.starts_with(BEGIN) && merged.ends_with(user),
            "{merged}"
        );
        // A new port replaces the block where it is; the user's lines stay.
        let edited = format!("Host a\n  Port 1\n{merged}Host b\n");
        let other = Snippets {
            port: 2300,
            ..snippets(&p)
        }
        .host_block();
        let re = merge_ssh_config(&edited, &other).unwrap().unwrap();
        assert!(re.starts_with("Host a\n  Port 1\n# BEGIN"), "{re}");
        assert!(
            re.contains("Port 2300") && !re.contains("Port 2222"),
            "{re}"
        );
        assert!(re.ends_with("Host *\n  User me\nHost b\n"), "{re}");
        assert!(merge_ssh_config(&format!("{BEGIN}\nHost x\n"), &block).is_err());
    }
}
