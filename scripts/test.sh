#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, snapshot, property and integration tests
# (the escape tests start real bubblewrap sandboxes; as root they run as the user
# $WRAPIX_TEST_USER, default `ci`, which .ci/run creates). Then the escape tests again against
# rootless podman (WRAPIX_TEST_BACKEND=podman), from an image built once per machine into
# /tmp/wrapix-test-images. Skipped tests and probes are listed before the closing line.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log="$(mktemp)"
skips="$(mktemp)"
trap 'rm -f "$log" "$skips"' EXIT
export WRAPIX_TEST_SKIP_LOG="$skips"
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
missing=""
for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "podman escape pass: skipped:$missing not installed (sudo apt-get install podman runc uidmap mmdebstrap)"
else
  start=$SECONDS
  # `--workspace --test all` reuses the first pass's build (`-p wrapix-cli` resolves features
  # differently and recompiles); only wrapix-cli's escape, testhost and dns modules match.
  WRAPIX_TEST_BACKEND=podman cargo test --workspace --locked --test all -- escape testhost dns 2>&1 | tee -a "$log"
  podman_status=${PIPESTATUS[0]}
  echo "podman escape pass: $((SECONDS - start)) s"
  [ "$status" -ne 0 ] || status=$podman_status
fi
set -e
if [ -s "$skips" ]; then
  echo "skipped (the test passed without this part):"
  sort "$skips" | uniq -c
fi
# One closing line for both passes (cargo's last line is a doc-test binary's).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
