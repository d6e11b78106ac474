#!/usr/bin/env bash
# Installs what wrapix and its tests need on Debian/Ubuntu. Idempotent. Run as root or with sudo.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# bubblewrap: the sandbox; passt: pasta, userspace networking for network = "open";
# openssh-client: deploy keys; git, perl, iproute2, python3, util-linux: used by the tests;
# hyperfine: the benchmark.
# podman runc slirp4netns uidmap fuse-overlayfs: the rootless podman backend; mmdebstrap: the
# image builder (npm, for Claude Code in images, comes with Node.js, preinstalled on CI).
$SUDO apt-get install -y -q --no-install-recommends \
  bubblewrap passt openssh-client git perl iproute2 python3 util-linux hyperfine ca-certificates \
  podman runc slirp4netns uidmap fuse-overlayfs mmdebstrap
# Notification tests: dbus (dbus-daemon, a private session bus), xvfb (X11 focus), i3-wm (a
# real window manager under Xvfb: i3 IPC and _NET_ACTIVE_WINDOW), tmux (pane focus).
$SUDO apt-get install -y -q --no-install-recommends dbus xvfb i3-wm tmux
# Podman on hosts without systemd and with hybrid cgroups (CI): runc (crun fails there), the
# cgroupfs manager, and the overlay driver (vfs copies the whole image per run). These files
# must exist before a user's first podman call: podman records the driver in its database.
if [ ! -e /etc/containers/containers.conf ] || ! grep -q 'runtime = "runc"' /etc/containers/containers.conf; then
  $SUDO mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
    | $SUDO tee /etc/containers/containers.conf >/dev/null
fi
if [ ! -e /etc/containers/storage.conf ] || ! grep -q 'driver = "overlay"' /etc/containers/storage.conf; then
  printf '[storage]\ndriver = "overlay"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' \
    | $SUDO tee /etc/containers/storage.conf >/dev/null
fi
# Rootless podman warns when / is not a shared mount.
$SUDO mount --make-rshared / 2>/dev/null || true
# pasta needs /dev/net/tun; some hosts ship it as 0600 (then pasta cannot start as a user).
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != "666" ]; then
  echo "install-deps: making /dev/net/tun usable by unprivileged users (chmod 0666)"
  $SUDO chmod 0666 /dev/net/tun
fi
# MCP server tmux-debug: tmux, and the official MCP Python SDK (`mcp` on PyPI) for its
# integration tests, in a venv under target/ (the tests look for target/py-mcp/bin/python).
$SUDO apt-get install -y -q --no-install-recommends tmux python3-venv
VENV="$(cd "$(dirname "$0")/.." && pwd)/target/py-mcp"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import mcp' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check mcp
fi
