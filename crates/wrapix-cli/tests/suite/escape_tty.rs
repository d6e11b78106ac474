//! Terminal injection: with the user's terminal (a pty that is wrapix's controlling terminal)
//! as stdin/stdout/stderr, the sandbox cannot push input into it with TIOCSTI.

use std::io::Read;
use std::process::{Command, Stdio};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::harness::{Case, Out, Running};

/// Everything the terminal shows so far (non-blocking).
fn drain(master: &mut std::fs::File) -> String {
    use std::os::fd::AsRawFd;
    fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&all).into_owned()
}

const PERL: &str = "$c = \"Z\"; if (ioctl(STDIN, 0x5412, $c)) { print \"INJECTED\\n\"; exit 0 } \
                    print \"tiocsti: $!\\n\"; exit 1";

/// Starts `argv` with a fresh pty as its controlling terminal (`setsid -c`, which execs it:
/// the child's PID is the program's) and stdin, stdout and stderr; returns it and the
/// terminal's master side.
pub fn start_on_pty(c: &Case, argv: Vec<std::ffi::OsString>) -> (Running, std::fs::File) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut cmd = Command::new("setsid");
    cmd.arg("-c").args(&argv);
    c.clean_env(&mut cmd);
    cmd.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave));
    (
        Running::start(cmd).unwrap(),
        std::fs::File::from(pty.master),
    )
}

/// Runs `argv` on a fresh pty ([`start_on_pty`]); returns how it ended and what the terminal
/// shows.
pub fn on_pty(c: &Case, argv: Vec<std::ffi::OsString>) -> (Out, String) {
    let (running, mut master) = start_on_pty(c, argv);
    let out = running.finish();
    let screen = drain(&mut master);
    (out, screen)
}

#[test]
fn cannot_inject_input_into_the_terminal() {
    let Some(c) = Case::escape() else { return };
    // Control: on the host, the same program injects "Z" into its terminal (unless the kernel
    // has TIOCSTI disabled for everyone).
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").unwrap_or_default();
    if legacy.trim() == "0" {
        eprintln!("note: dev.tty.legacy_tiocsti = 0 here; no host control for TIOCSTI");
    } else {
        let (out, screen) = on_pty(&c, c.env.user_argv("perl", &["-e", PERL]));
        assert_eq!(
            out.code, 0,
            "host control: TIOCSTI failed on the host:\n{screen}"
        );
        assert!(
            screen.contains('Z'),
            "host control: nothing injected:\n{screen:?}"
        );
    }

    let bin = c.env.bin.to_string_lossy().into_owned();
    let (out, screen) = on_pty(
        &c,
        c.env.user_argv(&bin, &["run", "--", "perl", "-e", PERL]),
    );
    assert_eq!(
        out.code, 1,
        "TIOCSTI was not refused; terminal shows:\n{screen}"
    );
    assert!(
        screen.contains("tiocsti: Operation not permitted"),
        "terminal shows:\n{screen:?}"
    );
    // An injected "Z" would be echoed back by the terminal.
    assert!(!screen.contains('Z'), "input was injected:\n{screen:?}");
}
