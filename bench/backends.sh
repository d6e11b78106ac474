#!/usr/bin/env bash
# Start-to-exit of `wrapix run --network none -- true` (and `-- true` with the open network) for
# every backend this host can run, side by side, interleaved in one run (bench/interleave.py:
# median and p90), as ratios against bubblewrap.
#   bench/backends.sh [RUNS]
# As root, bubblewrap and systemd-nspawn run as root (nspawn is root only); as a user, nspawn is
# not measured. Podman is measured with WRAPIX_BENCH_PODMAN=1, from the `base` image in
# XDG_DATA_HOME (built first if missing: minutes); the script says what it did not measure.
set -euo pipefail
runs="${1:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build-release.sh" --quiet -p wrapix-cli --bin wrapix --bin wrapix-init
work="$(mktemp -d /tmp/wrapix-bench-backends.XXXXXX)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
target="${CARGO_TARGET_DIR:-$root/target}/release"
install -m 755 "$target/wrapix" "$target/wrapix-init" "$work/"
mkdir -p "$work/home/project" "$work/runtime"
chmod 700 "$work/runtime"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
export HOME="$work/home" XDG_RUNTIME_DIR="$work/runtime" XDG_CACHE_HOME="$work/home/.cache"
export XDG_DATA_HOME="$data"
cd "$work/home/project"
w="$work/wrapix"
cases=()
for net in none open; do
  cases+=("bwrap-$net=$w run --backend bwrap --network $net -- true")
done
if [ "$(id -u)" -eq 0 ] && command -v systemd-nspawn >/dev/null 2>&1; then
  for net in none open; do
    cases+=("nspawn-$net=$w run --backend nspawn --network $net -- true")
  done
else
  echo "nspawn: not measured (needs root and systemd-nspawn)"
fi
# qemu: a whole VM per run. Under TCG (no usable KVM, as on the PVM test machine) it is
# seconds per run; the boot's breakdown is printed once (WRAPIX_QEMU_TIMING=1).
if command -v qemu-system-x86_64 >/dev/null 2>&1 && ls /boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1; then
  for net in none open; do
    cases+=("qemu-$net=$w run --backend qemu --network $net -- true")
  done
  WRAPIX_QEMU_TIMING=1 "$w" run --backend qemu --network none -- true </dev/null || true
else
  echo "qemu: not measured (needs qemu-system-x86, linux-image-cloud-amd64, virtiofsd)"
fi
if [ "${WRAPIX_BENCH_PODMAN:-0}" = 1 ] && command -v podman >/dev/null 2>&1 && "$w" image build --profile base >/dev/null </dev/null; then
  for net in none open; do
    cases+=("podman-$net=$w run --backend podman --profile base --network $net -- true")
  done
else
  echo "podman: not measured (set WRAPIX_BENCH_PODMAN=1; needs podman and the base image)"
fi
# Each case once first: caches (/etc, images) as a user's second run finds them.
for c in "${cases[@]}"; do
  bash -c "${c#*=}" || { echo "failed: ${c#*=}" >&2; exit 1; }
done
echo "start to exit of \`true\`, $runs interleaved rounds; ratios against bwrap-none (and bwrap-open):"
python3 "$root/bench/interleave.py" "$runs" 2 --vs bwrap-open "${cases[@]}"
