#!/usr/bin/env bash
# Image benchmarks, printed as ratios from one run (needs hyperfine, mmdebstrap, podman, npm):
#  1. cold build of `base` vs plain mmdebstrap of the same package set (+ the same npm step)
#  2. warm `wrapix run -- true` from the cached image vs the same with --profile host
#     (the up-to-date check is the difference in image lookup; also timed alone)
#  3. `wrapix run --backend podman -- true` vs raw `podman run --rm … --rootfs … true`
# Run as a normal user with a subuid range. WRAPIX=path/to/wrapix (default: target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
WRAPIX=${WRAPIX:-$PWD/target/release/wrapix}
[ -x "$WRAPIX" ] || cargo build --release -p wrapix-cli
work=$(mktemp -d /tmp/wrapix-bench-images.XXXXXX)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export XDG_DATA_HOME="$work/data"
proj="$work/proj"; mkdir -p "$proj"; cd "$proj"
# ratio T0 T1 T2: (T2 - T1) / (T1 - T0), as seconds and a ratio.
ratio() { python3 -c "import sys; t0,t1,t2=map(float,sys.argv[1:]); a,b=t2-t1,t1-t0; print(f'{a:.1f} s / {b:.1f} s = {a/b:.2f}x')" "$1" "$2" "$3"; }

echo "== 1. cold build of base vs plain mmdebstrap"
pkgs=$("$WRAPIX" profile show base | awk '/^debian/ {$1=""; print}' | xargs | tr ' ' ',')
npm_pkgs=$("$WRAPIX" profile show base | awk '/^npm/ {$1=""; print}' | xargs)
cat > "$work/npm-hook" <<HOOK
#!/bin/sh
set -eu
mkdir -p "\$1/tmp/n"
HOME="\$1/tmp/n" npm_config_cache="\$1/tmp/n" npm install -g --prefix "\$1/usr/local" --cafile /etc/ssl/certs/ca-certificates.crt $npm_pkgs >&2
rm -rf "\$1/tmp/n"
HOOK
chmod 755 "$work" "$work/npm-hook"
t0=$(date +%s.%N)
mmdebstrap --mode=unshare --variant=apt --include="$pkgs" --customize-hook="$work/npm-hook" \
  bookworm "$work/plain" http://deb.debian.org/debian </dev/null 2>/dev/null
t1=$(date +%s.%N)
"$WRAPIX" image build --profile base >/dev/null
t2=$(date +%s.%N)
unshare --map-auto --map-root-user rm -rf "$work/plain" 2>/dev/null || true
echo -n "wrapix image build / plain mmdebstrap: "; ratio "$t0" "$t1" "$t2"

echo "== 2. warm start from the cached image"
hyperfine -N --warmup 3 --export-json "$work/2.json" \
  "$WRAPIX run --network none --profile base -- true" \
  "$WRAPIX run --network none --profile host -- true"
python3 - "$work/2.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print(f"image / host root: {r[0]['median']*1000:.1f} ms / {r[1]['median']*1000:.1f} ms = {r[0]['median']/r[1]['median']:.2f}x")
PY
hyperfine -N --warmup 3 "$WRAPIX profile show base" | grep -E "Time"

echo "== 3. podman: wrapix vs raw podman (same flags, same rootfs)"
root=$(ls -d "$XDG_DATA_HOME"/wrapix/images/*/rootfs | head -1)
hyperfine --warmup 2 --export-json "$work/3.json" \
  "$WRAPIX run --backend podman --network none --profile base -- true" \
  "podman run --rm --userns=keep-id --cap-drop=all --security-opt=no-new-privileges --read-only --network=none --rootfs $root /usr/bin/true"
python3 - "$work/3.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print(f"wrapix podman / raw podman: {r[0]['median']*1000:.0f} ms / {r[1]['median']*1000:.0f} ms = {r[0]['median']/r[1]['median']:.2f}x")
PY
