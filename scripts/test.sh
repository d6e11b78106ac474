#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, snapshot, property and integration tests
# (the escape tests start real bubblewrap sandboxes; as root they run as the user
# $WRAPIX_TEST_USER, default `ci`, which .ci/run creates).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
