//! `wrapix`: the command line ([`wrapix_cli`]); `notifyd` and `mcp` exec `wrapix-serve`.
//!
//! It starts at C's `main`, without Rust's own start-up (~0.1 ms of every sandbox's start,
//! bench/launch.sh): that start-up installs a handler that only names a stack overflow (and
//! reads `/proc/self/maps` for it), and ignores SIGPIPE, which is done here. The arguments
//! come from `std::env::args_os`, which glibc hands to std before `main`, and every way out
//! is `std::process::exit`, which flushes stdout.

// (Not in the unit-test build, whose harness brings its own `main`.)
#![cfg_attr(not(test), no_main)]

/// C's `main`: the process's entry point (no Rust runtime start-up, see above).
// An exported symbol is `unsafe_code` to the lint: this one is the only entry point.
#[cfg(not(test))]
#[allow(unsafe_code)]
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // As Rust's start-up does: a write to a closed pipe or socket is an EPIPE error to
    // handle, not a kill. (A child gets the default back: std's spawn resets it.)
    // SAFETY: one sigaction, before any other thread exists; SIG_IGN runs no handler code.
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) } {
        eprintln!("wrapix: error: cannot ignore SIGPIPE: {e}");
        return wrapix_cli::EXIT_NO_SANDBOX;
    }
    wrapix_cli::main::<false>()
}
