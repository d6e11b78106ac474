//! `wrapix`: the command line ([`wrapix_cli`]); `notifyd` and `mcp` exec `wrapix-serve`.

fn main() {
    wrapix_cli::main::<false>()
}
