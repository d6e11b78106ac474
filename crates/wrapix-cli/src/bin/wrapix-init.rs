//! `wrapix-init`: the sandbox's PID 1 as a binary of its own.
//!
//! The same code as `wrapix __init` ([`wrapix_sandbox::init`]), without the rest of wrapix
//! linked in: a sandbox with wrapix's init (bubblewrap on a terminal) starts by exec'ing it, and
//! a 0.5 MB binary maps and relocates a fraction of the pages the 13 MB `wrapix` does (about
//! 1.3 ms less per launch, measured with bench/launch.sh). The bubblewrap backend uses it when
//! it sits beside `wrapix`, else `wrapix __init`. Usage: `wrapix-init [--wait-fd FD] [--]
//! COMMAND ARGS…`
//!
//! It starts at C's `main`, without Rust's own start-up, which only installs a handler that
//! names a stack overflow (it reads `/proc/self/maps` for that) and ignores SIGPIPE: ~0.1 ms of
//! every sandbox's start (bench/launch.sh). Nothing here needs either: the init writes only
//! to stderr, and its command gets SIGPIPE's default back either way (std's spawn resets it).
//! The arguments come from `std::env::args_os`, which glibc hands to std before `main`.

// (Not in the unit-test build, whose harness brings its own `main`.)
#![cfg_attr(all(not(test), target_os = "linux"), no_main)]

/// C's `main`: the process's entry point (no Rust runtime start-up, see above).
// An exported symbol is `unsafe_code` to the lint: this one is the only entry point.
#[cfg(all(not(test), target_os = "linux"))]
#[allow(unsafe_code)]
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    let mut args = std::env::args_os();
    if wrapix_sandbox::vm::is_guest_init(args.next().as_deref()) {
        wrapix_sandbox::vm::guest::main();
    }
    let args: Vec<std::ffi::OsString> = args.collect();
    wrapix_sandbox::init::main(&args)
}

/// The sandbox's init runs in Linux sandboxes only; on macOS it is a binary that says so.
#[cfg(not(any(test, target_os = "linux")))]
fn main() {
    eprintln!("wrapix-init: error: the sandbox's init is Linux-only (docs/macos.md)");
    std::process::exit(125);
}
