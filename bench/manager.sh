#!/usr/bin/env bash
# `wrapix manager` under load: SESSIONS sessions at once (default 30) of a light agent (it
# paints its display once, then prints a line every 5 s), then REQUESTS requests (default
# 10,000) to `GET /api/sandboxes` on the TCP door with the token, by wrk (keep-alive
# connections, WRAPIX_BENCH_CONCURRENCY of them, default 10, on 2 threads), against the same
# number of requests to the cheapest authenticated answer of the same server
# (`GET /assets/style.css`) in the same run: requests/s, p50 and p99, as a ratio. Also: the
# daemon's RSS per session, its CPU while the sessions idle (it watches every session each
# second), the time to create a session, and one screenshot through the API (a fresh capture
# of the session's display, PNG-encoded, over the Unix socket) against `xwd -root` of the same
# display (an uncompressed dump by the X tool; both include their client's start: a Python
# request, an exec of xwd), per session, medians.
#   bench/manager.sh [SESSIONS] [REQUESTS]   (as root, everything runs as $WRAPIX_BENCH_USER,
#                                             default `ci`)
# Needs: bubblewrap, tmux, xvfb, x11-xserver-utils (xsetroot), x11-apps (xwd), wrk, python3
# (scripts/install-deps.sh --test installs them). Not run in CI; docs/manager.md has a result.
set -euo pipefail
sessions="${1:-30}"
requests="${2:-10000}"
conc="${WRAPIX_BENCH_CONCURRENCY:-10}"
root="$(cd "$(dirname "$0")/.." && pwd)"
for tool in bwrap tmux Xvfb xsetroot xwd wrk python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench/manager.sh: $tool is missing (scripts/install-deps.sh --test installs it)" >&2
    exit 1
  }
done
"$root/scripts/build-release.sh" --quiet -p wrapix-cli --bin wrapix --bin wrapix-init --bin wrapix-serve
work="$(mktemp -d /tmp/wrapix-bench-manager.XXXXXX)"
chmod 755 "$work"
target="${CARGO_TARGET_DIR:-$root/target}/release"
install -m 755 "$target/wrapix" "$target/wrapix-init" "$target/wrapix-serve" "$work/"
cp "$root/bench/manager_api.py" "$work/"
mkdir -p "$work/home/.config/wrapix" "$work/runtime" "$work/mgr"
chmod 700 "$work/runtime" "$work/mgr"
# The light agent: the user's own config (no trust needed), no shell parsing of any input.
cat > "$work/home/.config/wrapix/config.toml" <<'EOF'
[agent]
command = ["/bin/sh", "-c", "xsetroot -solid '#2266aa'; echo ready; while sleep 5; do echo tick; done"]
EOF
for i in $(seq 1 "$sessions"); do mkdir -p "$work/home/p$i"; done
as=()
if [ "$(id -u)" -eq 0 ]; then
  user="${WRAPIX_BENCH_USER:-ci}"
  chown -R "$user" "$work/home" "$work/runtime" "$work/mgr"
  as=(setpriv --reuid "$(id -u "$user")" --regid "$(id -g "$user")" --init-groups --)
fi
export HOME="$work/home" XDG_RUNTIME_DIR="$work/runtime" XDG_CACHE_HOME="$work/home/.cache"
export XDG_STATE_HOME="$work/home/.local/state" XDG_CONFIG_HOME="$work/home/.config"
# (Short: a session's tmux socket, STATE/tmux/UUID.sock, must fit 107 bytes.)
state="$work/mgr"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cd "$work/home"
"${as[@]}" "$work/wrapix" manager --state-dir "$state" --allow-root "$work/home" \
  --listen "127.0.0.1:$port" 2> "$work/manager.log" &
daemon=$!
cleanup() {
  local rc=$?
  [ "$rc" -eq 0 ] || { echo "the manager's log:"; tail -20 "$work/manager.log"; } >&2
  kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  "${as[@]}" "$work/wrapix" manager --state-dir "$state" --stop-all >/dev/null 2>&1 || true
  [ "${WRAPIX_BENCH_KEEP:-0}" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
# (The system's python3: one under root's home, such as pyenv's, is not the bench user's.)
py=python3
[ "${#as[@]}" -gt 0 ] && [ -x /usr/bin/python3 ] && py=/usr/bin/python3
echo "wrapix manager with $sessions sessions of a light agent, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
"${as[@]}" "$py" "$work/manager_api.py" "$state" "$daemon" "$work/home" "$sessions" "$requests" \
  "$conc" "$port" "$work/runtime"
