//! The floor of any launcher that supervises a sandbox: one small static process that starts
//! `ARGS…` (the raw plan), waits for it and exits with its status, doing nothing else. wrapix
//! has to be at least this (it must outlive the sandbox to check what it wrote, forward
//! signals and map exit codes), so `floor / minimal bwrap` is the lowest ratio wrapix's plan
//! allows. Built by bench/launch.sh with `rustc -O -C target-feature=+crt-static`.
//!   floor PROGRAM [ARGS…]

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: floor PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let status = std::process::Command::new(program).args(args).status();
    match status {
        Ok(s) => std::process::exit(s.code().unwrap_or(128)),
        Err(e) => {
            eprintln!("floor: {e}");
            std::process::exit(127);
        }
    }
}
