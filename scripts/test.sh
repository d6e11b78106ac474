#!/usr/bin/env bash
# The whole test suite, on its own on a fresh Debian machine (as root or as a user with sudo):
# installs what the tests need, then formatting, lints, unit, snapshot, property and integration
# tests, and a `cargo check` of the workspace for macOS (skipped when the target's standard
# library cannot be installed). The escape suite, with the network allowlist tests, runs five
# times (and the qemu backend's own and network tests once more, as root): as an unprivileged
# user against bubblewrap (as root: as the user $WRAPIX_TEST_USER, default `ci`, created if
# missing), as root against bubblewrap
# (WRAPIX_TEST_AS_ROOT=1) and against systemd-nspawn (WRAPIX_TEST_BACKEND=nspawn, root only),
# against rootless podman (WRAPIX_TEST_BACKEND=podman, from an image built once per machine
# into /tmp/wrapix-test-images) and against the qemu micro-VM as the user
# (WRAPIX_TEST_BACKEND=qemu; under TCG where KVM is unusable, as on our CI machines: each run
# boots a kernel in software, ~8-15 s, so this pass takes ~10 min on 2 cores; it runs the whole
# escape suite, which fits the CI budget). Skipped tests are listed, and
# counted as skipped, never as passed, in the closing line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
if [ "$(id -u)" -eq 0 ]; then
  export WRAPIX_TEST_USER="${WRAPIX_TEST_USER:-ci}"
  if ! id "$WRAPIX_TEST_USER" >/dev/null 2>&1; then
    echo "test.sh: creating the user $WRAPIX_TEST_USER: the sandboxes are tested as an unprivileged user, as people run them"
    useradd -m -s /bin/bash "$WRAPIX_TEST_USER"
  fi
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo machete
# Licenses, duplicate crates and sources (deny.toml, each exception with its reason). Not
# `advisories`: the RustSec database is a GitHub repository, which CI cannot reach.
cargo deny --locked check licenses bans sources
log="$(mktemp)"
skips="$(mktemp)"
trap 'rm -f "$log" "$skips"' EXIT
export WRAPIX_TEST_SKIP_LOG="$skips"
# `egress::`: the allowlist tests of the sandbox's side run in every backend's pass (the
# proxy's own decisions only in bubblewrap's; not `egress_…` modules).
escape_filter=(escape testhost dns egress::)
status=0
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# The passes below run with wrapix-init linked statically, as the quick start builds it
# (scripts/static-init.sh; the first pass ran the dynamic one that cargo links).
static_init="$(mktemp -d)/wrapix-init"
trap 'rm -f "$log" "$skips"; rm -rf "$(dirname "$static_init")"' EXIT
if scripts/static-init.sh dev; then
  cp "${CARGO_TARGET_DIR:-target}/debug/wrapix-init" "$static_init"
  chmod 755 "$(dirname "$static_init")"
  export WRAPIX_TEST_INIT="$static_init"
  echo "the next passes use the static wrapix-init"
else
  echo "static wrapix-init: cannot be linked here; the next passes use the dynamic one"
  echo "[all] (the static wrapix-init): scripts/static-init.sh failed" >> "$skips"
  [ "${CI:-}" = "true" ] && status=1
fi

# macOS: the workspace keeps compiling for Apple silicon (the apple backend's Mac layer and
# wrapix-hostfs's macOS code are type-checked here, never run: docs/macos.md). It needs the
# target's standard library; `rustup target add` downloads it from static.rust-lang.org, which
# CI may not reach: then this is a skip, not a failure. `DOCS_RS=1`: mac-notification-sys
# compiles Objective-C against Apple's SDK, which only a Mac has, and its build script skips
# that under DOCS_RS (as on docs.rs); `cargo check` links nothing. No other crate reads it.
mac=aarch64-apple-darwin
mac_installed() { rustup target list --installed 2>/dev/null | grep -qx "$mac"; }
if command -v rustup >/dev/null 2>&1 && ! mac_installed; then
  timeout 30 rustup target add "$mac" >/dev/null 2>&1
fi
if command -v rustup >/dev/null 2>&1 && mac_installed; then
  start=$SECONDS
  DOCS_RS=1 cargo check --workspace --locked --target "$mac" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  echo "macOS check: $((SECONDS - start)) s"
else
  echo "macOS check: skipped: the $mac standard library is not installed and rustup could not add it within 30 s (rustup target add $mac)"
  echo "[macOS] (cargo check --target $mac): the target's standard library is not installed" >> "$skips"
fi

# The root pass: the same escape suite with wrapix itself running as root. The test binary is
# run directly (as a user, through sudo: root's PATH has no cargo).
bin="$(cargo test --workspace --locked --test all --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "all" and m.get("executable") and "wrapix-cli" in m["package_id"]:
        print(m["executable"])')"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then
    as_root=(sudo -n --preserve-env=WRAPIX_TEST_SKIP_LOG,WRAPIX_TEST_NO_SKIP,WRAPIX_TEST_INIT)
  else
    as_root=()
    echo "root escape pass: skipped: sudo needs a password here (run scripts/test.sh as root, or with passwordless sudo)"
    echo "[bwrap, as root] (the whole root pass): sudo needs a password" >> "$skips"
    [ "${CI:-}" = "true" ] && status=1
    bin=""
  fi
fi
if [ -n "$bin" ]; then
  start=$SECONDS
  (cd crates/wrapix-cli && "${as_root[@]}" env WRAPIX_TEST_AS_ROOT=1 "$bin" "${escape_filter[@]}") 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  echo "root escape pass: $((SECONDS - start)) s"
  # The nspawn backend (root only): the same escape suite.
  if command -v systemd-nspawn >/dev/null 2>&1; then
    start=$SECONDS
    (cd crates/wrapix-cli && "${as_root[@]}" env WRAPIX_TEST_AS_ROOT=1 WRAPIX_TEST_BACKEND=nspawn "$bin" "${escape_filter[@]}") 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    echo "nspawn escape pass: $((SECONDS - start)) s"
  else
    echo "nspawn escape pass: skipped: systemd-nspawn is not installed (sudo apt-get install systemd-container)"
    echo "[nspawn, as root] (the whole nspawn pass): systemd-nspawn is not installed" >> "$skips"
    [ "${CI:-}" = "true" ] && status=1
  fi
  # The qemu backend as root: its own tests, the network escape and allowlist tests (the
  # whole suite runs against qemu as the user below; as root the network holder and virtiofsd
  # differ).
  if command -v qemu-system-x86_64 >/dev/null 2>&1 && [ -x /usr/local/bin/virtiofsd ]; then
    start=$SECONDS
    (cd crates/wrapix-cli && "${as_root[@]}" env WRAPIX_TEST_AS_ROOT=1 WRAPIX_TEST_BACKEND=qemu "$bin" escape_net testhost egress:: qemu::) 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    echo "qemu root pass: $((SECONDS - start)) s"
  else
    echo "qemu root pass: skipped: qemu or virtiofsd is not installed (scripts/install-deps.sh --test)"
    echo "[qemu, as root] (the qemu root pass): qemu or virtiofsd is not installed" >> "$skips"
    [ "${CI:-}" = "true" ] && status=1
  fi
fi

missing=""
for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "podman escape pass: skipped:$missing not installed (sudo apt-get install podman runc uidmap mmdebstrap)"
  echo "[podman] (the whole podman pass):$missing not installed" >> "$skips"
  [ "${CI:-}" = "true" ] && status=1
else
  start=$SECONDS
  # `--workspace --test all` reuses the first pass's build (`-p wrapix-cli` resolves features
  # differently and recompiles); only wrapix-cli's escape, testhost, dns and egress modules match.
  WRAPIX_TEST_BACKEND=podman cargo test --workspace --locked --test all -- "${escape_filter[@]}" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  echo "podman escape pass: $((SECONDS - start)) s"
fi

# The qemu backend (as the user, like podman): the same escape suite in the VM.
missing=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86_64"
[ -x /usr/local/bin/virtiofsd ] || missing="$missing virtiofsd"
ls /boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1 || missing="$missing linux-image-cloud-amd64"
if [ -n "$missing" ]; then
  echo "qemu escape pass: skipped:$missing not installed (scripts/install-deps.sh --test)"
  echo "[qemu] (the whole qemu pass):$missing not installed" >> "$skips"
  [ "${CI:-}" = "true" ] && status=1
else
  start=$SECONDS
  WRAPIX_TEST_BACKEND=qemu cargo test --workspace --locked --test all -- "${escape_filter[@]}" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  echo "qemu escape pass: $((SECONDS - start)) s"
fi
set -e
skipped=0
if [ -s "$skips" ]; then
  echo "skipped (the test returned early, or the part named did not run):"
  sort "$skips" | uniq -c
  # One per test and pass: a test that skipped twice is one skipped test.
  skipped="$(sed -E 's/: .*//' "$skips" | sort -u | wc -l)"
fi
# One closing line for every pass (cargo's last line is a doc-test binary's). A skipped test
# returned early and cargo counted it as passed: it is moved to the skipped count.
awk -v s="$skipped" '/^test result:/ { p += $4; f += $6 } END { p -= s; if (p < 0) p = 0; printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
