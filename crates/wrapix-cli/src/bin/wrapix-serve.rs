//! `wrapix-serve`: the same command line as `wrapix` ([`wrapix_cli`]), with the long-running
//! servers linked in: `wrapix notifyd` and `wrapix mcp …` exec this binary, installed beside
//! `wrapix` (and bound into sandboxes that use wrapix's MCP servers).

fn main() {
    wrapix_cli::main::<true>()
}
