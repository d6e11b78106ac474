#!/bin/sh
# wrapix image builder: mmdebstrap's --customize-hook, run with the new root as $1.
# Package names are read from list files next to this script, one per line; wrapix validated
# each of them (no spaces, no leading `-`). Nothing is ever interpolated into this script.
set -eu
root="$1"
here="$(dirname "$0")"

step() { echo "I: wrapix: $*" >&2; }

# Mount points the backends need in a read-only root, and files podman binds over.
mkdir -p "$root/workspace" "$root/home" "$root/run" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
for f in etc/resolv.conf etc/hosts etc/hostname; do
  [ -e "$root/$f" ] || [ -L "$root/$f" ] || : > "$root/$f"
done

ca=""
if [ -r "$here/ca.crt" ]; then ca="$here/ca.crt"; fi

if [ -s "$here/npm.list" ]; then
  step "installing npm packages"
  set --
  while IFS= read -r p; do set -- "$@" "$p"; done < "$here/npm.list"
  work="$root/tmp/wrapix-npm"
  mkdir -p "$work/home" "$work/cache"
  HOME="$work/home" npm_config_cache="$work/cache" npm_config_update_notifier=false \
    npm_config_fund=false npm_config_audit=false NODE_EXTRA_CA_CERTS="${ca:-}" \
    npm install --global --no-progress --loglevel=error --prefix "$root/usr/local" \
    ${ca:+--cafile "$ca"} "$@" >&2
  rm -rf "$work"
fi

if [ -s "$here/pip.list" ]; then
  step "installing pip packages"
  mkdir -p "$root/tmp/wrapix-pip"
  cp "$here/pip.list" "$root/tmp/wrapix-pip/requirements.txt"
  if [ -n "$ca" ]; then cp "$ca" "$root/tmp/wrapix-pip/ca.crt"; fi
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root PIP_DISABLE_PIP_VERSION_CHECK=1 ${PIP_INDEX_URL:+PIP_INDEX_URL="$PIP_INDEX_URL"} \
    ${ca:+PIP_CERT=/tmp/wrapix-pip/ca.crt} \
    python3 -m pip install --no-cache-dir --break-system-packages --root-user-action=ignore \
    --progress-bar off --requirement /tmp/wrapix-pip/requirements.txt >&2
  rm -rf "$root/tmp/wrapix-pip" "$root/root/.cache"
fi
step "packing the root filesystem"
