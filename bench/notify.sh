#!/usr/bin/env bash
# Notification benchmark (issue #4):
#  1. `cargo bench -p wrapix-notify`: latency from the client's send to the notifier being
#     called (median, p99), and the frames per second the daemon sustains.
#  2. The whole `wrapix notify` process against a running `wrapix notifyd` (hyperfine): what a
#     Claude Code hook costs the agent, with and without a daemon listening.
#  3. From inside a bubblewrap sandbox, as a hook calls it: the time from starting
#     `wrapix notify` to a `--command` notifier running on the host (through the sandbox's
#     /run/wrapix/notify.sock symlink into the mounted notify.d folder), median and p99.
#   bench/notify.sh [RUNS]        (default 200)
set -euo pipefail
runs="${1:-200}"
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export LC_ALL=C
cargo bench --quiet --manifest-path "$root/Cargo.toml" -p wrapix-notify --bench notify
"$root/scripts/build-release.sh" --quiet -p wrapix-cli
wrapix="$CARGO_TARGET_DIR/release/wrapix"
work="$(mktemp -d /tmp/wrapix-notify-bench.XXXXXX)"
daemon=""
# Stops the daemon this script started (its PID, never a name) and waits for it.
stop_daemon() {
  if [ -n "$daemon" ]; then
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    daemon=""
  fi
}
cleanup() { stop_daemon; rm -rf "$work"; }
trap cleanup EXIT
mkdir -m 700 "$work/run"
export XDG_RUNTIME_DIR="$work/run"
wait_published() {
  for _ in $(seq 500); do [ -S "$work/run/wrapix/notify.d/notify.sock" ] && return 0; sleep 0.01; done
  echo "notifyd did not start:" >&2; cat "$work/notifyd.log" >&2; return 1
}

if command -v hyperfine >/dev/null; then
  hyperfine --runs "$runs" --warmup 10 -N --style basic \
    --command-name "wrapix notify, no daemon (exits 0)" "$wrapix notify bench" 2>&1 | grep -v "^ *$"
  "$wrapix" notifyd --command true 2>>"$work/notifyd.log" &
  daemon=$!
  wait_published
  hyperfine --runs "$runs" --warmup 10 -N --style basic \
    --command-name "wrapix notify, daemon listening" "$wrapix notify bench" 2>&1 | grep -v "^ *$"
  stop_daemon
else
  echo "SKIP: hyperfine is not installed (apt-get install hyperfine); process timings not measured"
fi

if ! command -v bwrap >/dev/null; then
  echo "SKIP: bubblewrap is not installed; the in-sandbox latency is not measured"
  exit 0
fi
# The notifier appends "<time the sandbox started wrapix notify> <time it runs>" to a file in
# the project, where the sandbox sees it. Never suppressed (the terminal running this may have
# the focus).
mkdir "$work/project"
got="$work/project/e2e.txt"
WRAPIX_NOTIFY_ALWAYS=1 "$wrapix" notifyd \
  --command bash -c 'read -r t0; echo "$t0 $EPOCHREALTIME" >> "$0"' "$got" 2>>"$work/notifyd.log" &
daemon=$!
wait_published
# One notification at a time (the next once the notifier has run), so none waits in the queue.
(cd "$work/project" && "$wrapix" run --network none -- bash -c '
  for i in $(seq "$1"); do
    wrapix notify "$EPOCHREALTIME"
    polls=0
    while mapfile -t got 2>/dev/null < /workspace/e2e.txt; [ "${#got[@]}" -lt "$i" ]; do
      sleep 0.005
      polls=$((polls + 1))
      if [ "$polls" -ge 2000 ]; then echo "notification $i did not arrive in 10 s" >&2; exit 1; fi
    done
  done' bash "$runs")
stop_daemon
awk '{ printf "%.3f\n", ($2 - $1) * 1000 }' "$got" | sort -n | awk -v want="$runs" '
  { a[NR] = $1 }
  END {
    if (NR < want) { printf "in-sandbox latency: only %d of %d notifications arrived\n", NR, want; exit 1 }
    p99 = int(NR * 0.99 + 0.5); if (p99 < 1) p99 = 1
    printf "wrapix notify in a sandbox -> --command notifier running (%d runs): median %.2f ms, p99 %.2f ms, max %.2f ms\n",
      NR, a[int((NR + 1) / 2)], a[p99], a[NR]
  }'
grep -i dropped "$work/notifyd.log" || echo "notifyd dropped nothing"
