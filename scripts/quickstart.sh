#!/usr/bin/env bash
# Quick start: install what is needed, build wrapix, and start a sandbox in the current folder
# (the agent when it is installed, otherwise a shell). Usage: scripts/quickstart.sh [PROJECT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/install-deps.sh"
if ! command -v cargo >/dev/null 2>&1; then
  echo "quickstart: cargo is missing; install Rust from https://rustup.rs and run this again" >&2
  exit 1
fi
cargo build --release --manifest-path "$here/Cargo.toml"
"$here/target/release/wrapix" doctor || true
exec "$here/target/release/wrapix" -C "${1:-$PWD}"
