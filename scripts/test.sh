#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, snapshot, property and integration tests
# (the escape tests start real bubblewrap sandboxes; as root they run as the user
# $WRAPIX_TEST_USER, default `ci`, which .ci/run creates).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo's last line is a doc-test binary's).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
