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
$SUDO apt-get install -y -q --no-install-recommends \
  bubblewrap passt openssh-client git perl iproute2 python3 util-linux hyperfine ca-certificates
# pasta needs /dev/net/tun; some hosts ship it as 0600 (then pasta cannot start as a user).
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != "666" ]; then
  echo "install-deps: making /dev/net/tun usable by unprivileged users (chmod 0666)"
  $SUDO chmod 0666 /dev/net/tun
fi
