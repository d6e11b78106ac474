#!/usr/bin/env bash
# The egress proxy against the open network: download throughput and per-connection latency
# to a local test server, through wrapix's proxy (an allowlist naming the server) and directly
# through pasta (`network = "open"`), in alternating rounds of one run, as ratios.
#   bench/egress.sh [ROUNDS] [MIB]     (defaults: 5 rounds, 256 MiB per download)
# Root only: the server runs in a network namespace of its own joined by a veth pair (the host's
# own addresses are out of the sandbox's reach by design). Inside each sandbox, a Python client
# opens 100 connections one after another (a CONNECT through the proxy, or a plain TCP
# connection), each fetching a small response, and curl downloads MIB MiB.
# Targets (issue 16): throughput >= 0.8x of direct, < 2 ms added per connection.
set -euo pipefail
rounds="${1:-5}"
mib="${2:-256}"
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/egress.sh: needs root (ip netns for the test server)" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build-release.sh" --quiet -p wrapix-cli --bin wrapix --bin wrapix-init
work="$(mktemp -d /tmp/wrapix-bench-egress.XXXXXX)"
ns="wrapix-be$$"
veth="wxbe$$"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  ip link del "$veth" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
target="${CARGO_TARGET_DIR:-$root/target}/release"
install -m 755 "$target/wrapix" "$target/wrapix-init" "$work/"
mkdir -p "$work/home/project" "$work/runtime"
chmod 700 "$work/runtime"

# The test server: 10.213.251.2 in its own namespace; /small is 2 bytes, /big is MIB MiB.
ip netns add "$ns"
ip link add "$veth" type veth peer name "${veth}n"
ip link set "${veth}n" netns "$ns"
ip addr add 10.213.251.1/30 dev "$veth"
ip link set "$veth" up
ip -n "$ns" addr add 10.213.251.2/30 dev "${veth}n"
ip -n "$ns" link set "${veth}n" up
ip -n "$ns" link set lo up
cat >"$work/server.py" <<'EOF'
import socket, sys, threading
big = int(sys.argv[1]) << 20
chunk = bytes(1 << 20)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.213.251.2", 8080))
s.listen(128)
print("ready", flush=True)
def serve(c):
    with c:
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(4096)
            if not d:
                return
            head += d
        if b" /big " in head:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % big)
            left = big
            while left:
                n = min(left, len(chunk))
                c.sendall(chunk[:n])
                left -= n
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
ip netns exec "$ns" python3 "$work/server.py" "$mib" >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q ready "$work/server.out" 2>/dev/null && break; sleep 0.05; done

# The client, run inside the sandbox: MODE is "proxy" (CONNECT through 127.0.0.1:3128) or
# "direct"; prints the median milliseconds per connection, then bytes/s of the download.
cat >"$work/home/project/client.py" <<'EOF'
import socket, statistics, subprocess, sys, time
mode, host, port = sys.argv[1], "10.213.251.2", 8080
def once():
    t = time.perf_counter()
    if mode == "proxy":
        s = socket.create_connection(("127.0.0.1", 3128))
        s.sendall(b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (host.encode(), port))
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        assert b" 200 " in got.split(b"\r\n")[0], got
    else:
        s = socket.create_connection((host, port))
    s.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while not got.endswith(b"ok"):
        d = s.recv(4096)
        if not d:
            break
        got += d
    s.close()
    return (time.perf_counter() - t) * 1000
for _ in range(10):
    once()
print(statistics.median(once() for _ in range(100)))
args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{speed_download}", f"http://{host}:{port}/big"]
if mode == "proxy":
    args[1:1] = ["--proxytunnel", "--proxy", "http://127.0.0.1:3128"]
else:
    args[1:1] = ["--noproxy", "*"]
print(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
EOF

export HOME="$work/home" XDG_RUNTIME_DIR="$work/runtime" XDG_CACHE_HOME="$work/home/.cache"
cd "$work/home/project"
w="$work/wrapix"
run() {
  if [ "$1" = proxy ]; then
    "$w" run --allow-host 10.213.251.2 -- python3 /workspace/client.py proxy </dev/null
  else
    "$w" run --network open -- python3 /workspace/client.py direct </dev/null
  fi
}
run direct >/dev/null
run proxy >/dev/null
: >"$work/results"
for r in $(seq "$rounds"); do
  for mode in direct proxy; do
    out="$(run "$mode")"
    echo "$mode $(echo "$out" | tr '\n' ' ')" | tee -a "$work/results"
  done
done
python3 - "$work/results" "$mib" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
lat = {m: statistics.median(float(r[1]) for r in rows if r[0] == m) for m in ("direct", "proxy")}
bw = {m: statistics.median(float(r[2]) for r in rows if r[0] == m) for m in ("direct", "proxy")}
print(f"per connection (median of medians): direct {lat['direct']:.3f} ms, proxy {lat['proxy']:.3f} ms, "
      f"added {lat['proxy'] - lat['direct']:+.3f} ms (target < 2 ms)")
print(f"download of {sys.argv[2]} MiB: direct {bw['direct'] / 2**20:.0f} MiB/s, proxy {bw['proxy'] / 2**20:.0f} MiB/s, "
      f"ratio {bw['proxy'] / bw['direct']:.2f}x (target >= 0.8x)")
EOF
