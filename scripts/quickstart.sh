#!/usr/bin/env bash
# Quick start: install what running wrapix needs (bubblewrap, pasta, iproute2; nothing the
# tests need), build wrapix, check the host, and start a sandbox in the project folder (the
# agent when it is installed, otherwise a shell). Every change to the system is printed with
# its reason. Usage: scripts/quickstart.sh [PROJECT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/install-deps.sh"
if ! command -v cargo >/dev/null 2>&1; then
  echo "quickstart: cargo is missing; install Rust from https://rustup.rs and run this again" >&2
  exit 1
fi
"$here/scripts/build-release.sh"
bin="${CARGO_TARGET_DIR:-$here/target}/release"
"$bin/wrapix" doctor || true
exec "$bin/wrapix" -C "${1:-$PWD}"
