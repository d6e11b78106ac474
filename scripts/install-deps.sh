#!/usr/bin/env bash
# Installs what wrapix needs on Debian/Ubuntu (as root, or with sudo). Idempotent: packages
# already installed are not fetched again. Every change to the system is printed with its reason.
#   scripts/install-deps.sh          what running wrapix needs (the quick start)
#   scripts/install-deps.sh --test   and what the test suite needs (scripts/test.sh)
set -euo pipefail
tests=0
[ "${1:-}" = "--test" ] && tests=1
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
say() { echo "install-deps: $*"; }

# bubblewrap: the sandbox; passt: pasta, userspace networking for network = "open";
# iproute2 and util-linux (nsenter): the routes that keep the host's addresses out of reach;
# openssh-client: deploy keys; ca-certificates: TLS inside the sandbox.
runtime=(bubblewrap passt iproute2 util-linux openssh-client ca-certificates)
# The tests: curl (the egress proxy tests and bench/egress.sh), git, perl, python3 (probes), hyperfine (benchmarks); podman runc slirp4netns uidmap
# fuse-overlayfs: the rootless podman backend; mmdebstrap: the image builder (npm, for Claude
# Code in images, comes with Node.js); dbus, xvfb, i3-wm, tmux: notifications (a private
# session bus, X11 focus under a real window manager, tmux pane focus) and the MCP server;
# python3-venv: the official MCP Python SDK, in a venv under target/; systemd-container: the
# nspawn backend (its escape pass runs as root); x11-xserver-utils: xsetroot, the X client that
# draws a known colour in the [forward] display tests (xvfb is the "host" display there);
# qemu-system-x86 linux-image-cloud-amd64: the qemu backend (the VM and its guest kernel;
# libseccomp-dev libcap-ng-dev to build virtiofsd); nix-bin: `nix-instantiate` parses every .nix
# file and evaluates the modules without nixpkgs (crates/wrapix-cli/tests/suite/nix.rs).
# pulseaudio, pulseaudio-utils (paplay, parecord) and sox: the audio forward test (a private
# PulseAudio server with a null sink; a tone played inside is recorded and measured);
# pipewire-bin (pipewire, pw-cli): the audio forward on a PipeWire-only host;
# xdg-dbus-proxy and dbus-tests (dbus-test-tool, a service answering on a test bus): the dbus
# forward test; weston: its headless backend is the compositor of the wayland display test;
# chromium and fonts-liberation: the browser test (Chromium inside a host-profile sandbox,
# headless to PNG and headed on a private Xvfb), and the manager's dashboard test (headless
# Chromium driven over the DevTools protocol on a pipe: no chromedriver needed).
# (wrapix needs xdg-dbus-proxy at run time only for dbus = [...]; doctor says so.)
test_pkgs=(curl git perl python3 python3-venv hyperfine podman runc slirp4netns uidmap fuse-overlayfs
  mmdebstrap dbus xvfb i3-wm tmux systemd-container x11-xserver-utils qemu-system-x86
  linux-image-cloud-amd64 libseccomp-dev libcap-ng-dev nix-bin pulseaudio pulseaudio-utils sox
  pipewire-bin xdg-dbus-proxy dbus-tests weston chromium fonts-liberation)
want=("${runtime[@]}")
[ "$tests" -eq 1 ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# pasta needs /dev/net/tun; some hosts ship it as 0600, and then an unprivileged user's
# sandbox cannot have network = "open" (wrapix doctor says so too).
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != "666" ] && [ "$(id -u)" -ne 0 -o "$tests" -eq 1 ]; then
  say "chmod 0666 /dev/net/tun: it is $(stat -c %a /dev/net/tun), and pasta (network = \"open\") cannot open it as a user"
  $SUDO chmod 0666 /dev/net/tun
fi

[ "$tests" -eq 1 ] || exit 0

# systemd-nspawn keeps a propagation folder in /run/systemd/nspawn and warns at every start
# when that is not a tmpfs (hosts whose /run is not one, as CI machines).
if command -v systemd-nspawn >/dev/null 2>&1 && [ "$(stat -f -c %T /run/systemd/nspawn 2>/dev/null)" != "tmpfs" ]; then
  say "mounting a tmpfs on /run/systemd/nspawn: /run is not a tmpfs here, and systemd-nspawn warns at every start without one"
  $SUDO mkdir -p /run/systemd/nspawn
  $SUDO mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn
fi

# Podman on hosts without systemd and with hybrid cgroups (CI): runc (crun fails there), the
# cgroupfs manager, and the overlay driver (vfs copies the whole image per run). These files
# must exist before a user's first podman call: podman records the driver in its database.
if [ ! -e /etc/containers/containers.conf ] || ! grep -q 'runtime = "runc"' /etc/containers/containers.conf; then
  say "writing /etc/containers/containers.conf: runc and cgroupfs, which work without systemd and on hybrid cgroups"
  $SUDO mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
    | $SUDO tee /etc/containers/containers.conf >/dev/null
fi
if [ ! -e /etc/containers/storage.conf ] || ! grep -q 'driver = "overlay"' /etc/containers/storage.conf; then
  say "writing /etc/containers/storage.conf: the overlay driver (vfs copies the whole image for every run)"
  printf '[storage]\ndriver = "overlay"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' \
    | $SUDO tee /etc/containers/storage.conf >/dev/null
fi
# Rootless podman warns when / is not a shared mount.
if [ "$(findmnt -no PROPAGATION / 2>/dev/null)" != "shared" ]; then
  say "mount --make-rshared /: rootless podman warns on every run otherwise"
  $SUDO mount --make-rshared / 2>/dev/null || true
fi
# virtiofsd (the Rust one): the qemu backend's shares. Debian 12's qemu ships only the old C
# virtiofsd, which has no read-only mode and cannot run unprivileged. Built as the invoking
# user (root's PATH may have no cargo), installed into /usr/local/bin where every user,
# the unprivileged test user included, finds it.
if ! [ -x /usr/local/bin/virtiofsd ] && command -v cargo >/dev/null 2>&1; then
  say "cargo install virtiofsd into /usr/local/bin (the qemu backend's shares: read-only and unprivileged, which Debian 12's C virtiofsd is not)"
  vfs_root="$(mktemp -d)"
  cargo install --quiet --locked virtiofsd@1.14.0 --root "$vfs_root"
  $SUDO install -m 755 "$vfs_root/bin/virtiofsd" /usr/local/bin/virtiofsd
  rm -rf "$vfs_root"
fi
# cargo-machete: scripts/test.sh checks that no crate declares a dependency it does not use.
if ! command -v cargo-machete >/dev/null 2>&1 && command -v cargo >/dev/null 2>&1; then
  say "cargo install cargo-machete (unused-dependency check of the test command)"
  cargo install --quiet --locked cargo-machete@0.9.2
fi
# cargo-deny: scripts/test.sh checks the dependency tree's licenses, duplicate crates and
# sources against deny.toml. A build from source: about 6 minutes on two cores.
if ! command -v cargo-deny >/dev/null 2>&1 && command -v cargo >/dev/null 2>&1; then
  say "cargo install cargo-deny (license, duplicate-crate and source check of the test command; ~6 min)"
  cargo install --quiet --locked cargo-deny@0.20.2
fi
# The MCP server's integration tests use the official MCP Python SDK (`mcp` on PyPI), in a
# venv under target/ (the tests look for target/py-mcp/bin/python).
VENV="$(cd "$(dirname "$0")/.." && pwd)/target/py-mcp"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import mcp' 2>/dev/null; then
  say "creating $VENV with the MCP Python SDK (for the tests)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check mcp
fi
# schemathesis fuzzes the manager's JSON API from its own OpenAPI document
# (crates/wrapix-cli/tests/suite/manager_web.rs looks for target/py-schemathesis/bin/schemathesis).
ST_VENV="$(cd "$(dirname "$0")/.." && pwd)/target/py-schemathesis"
ST_VERSION=4.32.5
if [ "$("$ST_VENV/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "$ST_VERSION" ]; then
  say "creating $ST_VENV with schemathesis $ST_VERSION (the manager API's fuzz test)"
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
# A pinned Claude Code (a native binary from npm; no login needed) checks wrapix's agent wiring:
# `claude doctor` must list no invalid settings (crates/wrapix-cli/tests/suite/claude.rs).
CLAUDE_DIR="$(cd "$(dirname "$0")/.." && pwd)/target/claude-code"
CLAUDE_VERSION=2.1.197
if [ "$("$CLAUDE_DIR/bin/claude" --version 2>/dev/null | cut -d' ' -f1)" != "$CLAUDE_VERSION" ] && command -v npm >/dev/null 2>&1; then
  say "installing Claude Code $CLAUDE_VERSION into $CLAUDE_DIR (for the tests)"
  NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}" \
    npm install -g -q --prefix "$CLAUDE_DIR" "@anthropic-ai/claude-code@$CLAUDE_VERSION"
fi
