//! wrapix's command line: parse arguments, set up logging, run, map errors to exit codes.
//!
//! Two binaries share it: `wrapix` ([`main`] with `SERVE = false`) and `wrapix-serve`
//! (`SERVE = true`). The long-running servers, `wrapix notifyd` (D-Bus, tokio) and
//! `wrapix mcp …` (the MCP SDK), are linked into `wrapix-serve` only, and `wrapix` execs it for
//! them: `wrapix` is started for every sandbox, and half its size starts ~0.7 ms faster
//! (bench/launch.sh, docs/sandbox.md).

mod cli;
mod commands;
mod context;
mod logging;
mod ralph;
mod remote;

use clap::Parser;

/// Exit code for bad input (config, flags): nothing was started or created.
pub const EXIT_USAGE: i32 = 2;
/// Exit code when the sandbox could not be started (fail closed).
pub const EXIT_NO_SANDBOX: i32 = 125;

/// The whole program; never returns. `SERVE`: run the servers here (`wrapix-serve`) instead
/// of exec'ing `wrapix-serve` for them (`wrapix`).
pub fn main<const SERVE: bool>() -> ! {
    // The in-sandbox init must start fast and touch nothing else.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // (The internal entry points below are Linux-only: a macOS wrapix never runs in a
    // sandbox, docs/macos.md.)
    // The qemu backend's VM's PID 1 and its supervisor (see wrapix_sandbox::vm).
    #[cfg(target_os = "linux")]
    if wrapix_sandbox::vm::is_guest_init(args.first().map(|a| a.as_os_str())) {
        wrapix_sandbox::vm::guest::main();
    }
    #[cfg(target_os = "linux")]
    if args
        .get(1)
        .is_some_and(|a| a == "__vm" || a == "__vm-net" || a == "__vm-egress")
    {
        std::process::exit(wrapix_sandbox::init::main(&args[1..]));
    }
    #[cfg(target_os = "linux")]
    if args.get(1).map(|a| a == "__init").unwrap_or(false) {
        // `__init [--wait-fd FD] [--] COMMAND…`
        std::process::exit(wrapix_sandbox::init::main(&args[2..]));
    }
    // (internal) The sandbox's seccomp filter as raw BPF, for bench/launch.sh's raw bwrap.
    #[cfg(target_os = "linux")]
    if args.get(1).map(|a| a == "__seccomp-bpf").unwrap_or(false) {
        use std::io::Write;
        let opts = wrapix_sandbox::seccomp::SeccompOptions::default();
        let code = match wrapix_sandbox::seccomp::default_filter_bytes(opts) {
            Ok(bytes) if std::io::stdout().write_all(&bytes).is_ok() => 0,
            _ => 1,
        };
        std::process::exit(code);
    }
    // Installed as `wrapix-notify` too (a link in the sandbox): that name means `wrapix notify`.
    let mut args = args;
    let argv0 = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_owned());
    if argv0.as_deref() == Some("wrapix-notify".as_ref()) {
        args.insert(1, "notify".into());
    }
    // And as `ralph` (a link on the sandbox's PATH, or one the user makes): `wrapix ralph`.
    if argv0.as_deref() == Some("ralph".as_ref()) {
        args.insert(1, "ralph".into());
    }
    let cli = cli::Cli::parse_from(args);
    logging::init();
    let code = match commands::run::<SERVE>(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "wrapix: error: {}",
                wrapix_spec::error::escape_controls(&e.message)
            );
            // The line above says it all for the user; the typed chain under it is for
            // WRAPIX_LOG=debug.
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                tracing::debug!(error = ?c, "caused by: {c}");
                cause = c.source();
            }
            e.code
        }
    };
    std::process::exit(code);
}
