//! `wrapix-init`: the sandbox's PID 1 as a binary of its own.
//!
//! The same code as `wrapix __init` ([`wrapix_sandbox::init`]), without the rest of wrapix
//! linked in: a sandbox with wrapix's init (bubblewrap on a terminal) starts by exec'ing it, and
//! a 0.5 MB binary maps and relocates a fraction of the pages the 13 MB `wrapix` does (about
//! 1.3 ms less per launch, measured with bench/launch.sh). The bubblewrap backend uses it when
//! it sits beside `wrapix`, else `wrapix __init`. Usage: `wrapix-init [--wait-fd FD] [--]
//! COMMAND ARGS…`

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(wrapix_sandbox::init::main(&args));
}
