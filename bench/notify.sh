#!/usr/bin/env bash
# Notification benchmark (issue #4):
#  1. `cargo bench -p wrapix-notify`: latency from the client's send to the notifier being
#     called (median, p99), and the frames per second the daemon sustains.
#  2. The whole `wrapix notify` process against a running `wrapix notifyd` (hyperfine): what a
#     Claude Code hook costs the agent, with and without a daemon listening.
#   bench/notify.sh [RUNS]        (default 200)
set -euo pipefail
runs="${1:-200}"
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo bench --quiet --manifest-path "$root/Cargo.toml" -p wrapix-notify --bench notify
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p wrapix-cli
wrapix="$CARGO_TARGET_DIR/release/wrapix"
work="$(mktemp -d /tmp/wrapix-notify-bench.XXXXXX)"
daemon=""
cleanup() { [ -n "$daemon" ] && kill "$daemon" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -m 700 "$work/run"
export XDG_RUNTIME_DIR="$work/run"
if ! command -v hyperfine >/dev/null; then
  echo "SKIP: hyperfine is not installed (apt-get install hyperfine); process timings not measured"
  exit 0
fi
hyperfine --runs "$runs" --warmup 10 -N --style basic \
  --command-name "wrapix notify, no daemon (exits 0)" "$wrapix notify bench" 2>&1 | grep -v "^ *$"
"$wrapix" notifyd --command true 2>"$work/notifyd.log" &
daemon=$!
for _ in $(seq 200); do [ -S "$work/run/wrapix/notify.sock" ] && break; sleep 0.01; done
hyperfine --runs "$runs" --warmup 10 -N --style basic \
  --command-name "wrapix notify, daemon listening" "$wrapix notify bench" 2>&1 | grep -v "^ *$"
grep -i dropped "$work/notifyd.log" || echo "notifyd dropped nothing"
