#!/usr/bin/env bash
# Builds wrapix for use: every binary in target/release (wrapix, wrapix-init, wrapix-serve),
# with wrapix-init linked statically (scripts/static-init.sh). Extra arguments go to cargo build.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --locked --manifest-path "$here/Cargo.toml" "$@"
"$here/scripts/static-init.sh" release || echo "build-release: wrapix-init stays dynamic (it works, it starts slower)" >&2
