"""The measuring half of bench/manager.sh, run as the bench user (the manager's socket
answers only its own user). Arguments: STATE_DIR DAEMON_PID HOME SESSIONS REQUESTS
CONCURRENCY PORT RUNTIME_DIR."""

import http.client
import json
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import time

state, pid, home, n, requests, conc, port, runtime = sys.argv[1:9]
pid, n, requests, conc, port = int(pid), int(n), int(requests), int(conc), int(port)
sock_path = os.path.join(state, "manager.sock")


class UnixConnection(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost", timeout=120)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(sock_path)


def api(method, path, body=None):
    c = UnixConnection()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("the manager is gone")


def cpu_seconds():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def until(what, limit, f):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = f()
        if v:
            return v
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def ms(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def socket_up():
    if not os.path.exists(f"/proc/{pid}"):
        raise SystemExit("the manager exited")
    return os.path.exists(sock_path)


until("the manager's socket", 30, socket_up)
until("the manager's answer", 30, lambda: api("GET", "/api/sandboxes")[0] == 200)
rss0 = rss_kib()

# Create: one request after the other, as a user clicking would.
ids, create_times = [], []
for i in range(1, n + 1):
    t = time.perf_counter()
    status, body = api("POST", "/api/sandboxes", {
        "name": f"s{i}", "backend": "bubblewrap", "project_dir": f"{home}/p{i}", "network": False,
    })
    create_times.append(time.perf_counter() - t)
    if status != 201:
        raise SystemExit(f"create s{i}: {status} {body.decode(errors='replace')}")
    ids.append(json.loads(body)["id"])
# Every display up (its first screenshot answers).
for sid in ids:
    until(f"session {sid}'s display", 120,
          lambda: api("GET", f"/api/sandboxes/{sid}/screenshot")[0] == 200)
status, body = api("GET", "/api/sandboxes")
live = [s for s in json.loads(body) if s["status"] == "running"]
if len(live) != n:
    raise SystemExit(f"only {len(live)} of {n} sessions are running")
time.sleep(2)
rss1 = rss_kib()
c0, t0 = cpu_seconds(), time.monotonic()
time.sleep(10)
idle_cpu = (cpu_seconds() - c0) / (time.monotonic() - t0) * 100

# The load: wrk, for the whole seconds that give at least REQUESTS at the rate of a 1 s run first
# (wrk runs for a duration, not a count).
with open(os.path.join(state, "token")) as f:
    token = f.read().strip()
lua = os.path.join(home, "report.lua")
with open(lua, "w") as f:
    f.write("""
function done(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %f %f %f %d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, bad))
end
""")


def wrk(path, secs):
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(conc), "-d", f"{secs}s", "--timeout", "10s",
         "-H", f"Authorization: Bearer {token}", "-s", lua, f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True).stdout
    m = re.search(r"RESULT (\d+) (\S+) (\S+) (\S+) (\d+)", out)
    if not m:
        raise SystemExit(f"wrk: {out}")
    count, secs, p50, p99, bad = int(m[1]), float(m[2]), float(m[3]), float(m[4]), int(m[5])
    if bad:
        raise SystemExit(f"wrk {path}: {bad} failed requests\n{out}")
    return count, count / secs, p50, p99


def load(path):
    rate = wrk(path, 1)[1]
    return wrk(path, max(1, math.ceil(requests / rate)))


list_bytes = len(api("GET", "/api/sandboxes")[1])
lst = load("/api/sandboxes")
base = load("/assets/style.css")
rss2 = rss_kib()

# One screenshot: the API (a fresh capture once the cached one is 2 s old) against xwd of the
# same display, session by session; two rounds.
records = {}
base_dir = os.path.join(runtime, "wrapix", "sandboxes")
for d in os.listdir(base_dir):
    try:
        with open(os.path.join(base_dir, d, "record.json")) as f:
            r = json.load(f)
    except (OSError, ValueError):
        continue
    if r.get("x11_socket"):
        records[r["project"]] = r


def xauth_entries(path):
    with open(path, "rb") as f:
        b = f.read()
    out, i = [], 0
    while i + 2 <= len(b):
        fields = [int.from_bytes(b[i:i + 2], "big")]
        i += 2
        for _ in range(4):
            n_ = int.from_bytes(b[i:i + 2], "big")
            fields.append(b[i + 2:i + 2 + n_])
            i += 2 + n_
        out.append(fields)
    return out


def field(x):
    return len(x).to_bytes(2, "big") + x


# xwd (Xlib, libxcb 1.15) reaches a display only as :N under /tmp/.X11-unix: each session's
# socket gets a link there for the measurement, and a cookie file naming that N.
links, xwd_env = [], {}
try:
    num = 4000
    for i in range(1, n + 1):
        r = records[f"{home}/p{i}"]
        while os.path.lexists(f"/tmp/.X11-unix/X{num}"):
            num += 1
        os.symlink(r["x11_socket"], f"/tmp/.X11-unix/X{num}")
        links.append(f"/tmp/.X11-unix/X{num}")
        cookie = next(e for e in xauth_entries(r["xauthority"]) if e[3] == b"MIT-MAGIC-COOKIE-1")
        auth = os.path.join(home, f"xauth-{num}")
        with open(auth, "wb") as f:
            f.write((0xFFFF).to_bytes(2, "big") + field(b"") + field(str(num).encode())
                    + field(cookie[3]) + field(cookie[4]))
        xwd_env[i] = (f":{num}", dict(os.environ, XAUTHORITY=auth))
        num += 1
    api_t, xwd_t, png_bytes = [], [], []
    for _ in range(2):
        time.sleep(2.1)
        for i, sid in enumerate(ids, 1):
            t = time.perf_counter()
            status, png = api("GET", f"/api/sandboxes/{sid}/screenshot")
            api_t.append(time.perf_counter() - t)
            if status != 200 or not png.startswith(b"\x89PNG"):
                raise SystemExit(f"screenshot {sid}: {status}")
            png_bytes.append(len(png))
            display, env = xwd_env[i]
            t = time.perf_counter()
            subprocess.run(["xwd", "-root", "-silent", "-display", display],
                           stdout=subprocess.DEVNULL, env=env, check=True)
            xwd_t.append(time.perf_counter() - t)
finally:
    for link in links:
        os.unlink(link)

print(f"create, one at a time: median {ms(create_times, 0.5):.0f} ms, p90 {ms(create_times, 0.9):.0f} ms per session")
print(f"daemon RSS: {rss0 / 1024:.1f} MiB with no session, {rss1 / 1024:.1f} MiB with {n} "
      f"({(rss1 - rss0) / n:.0f} KiB per session), {rss2 / 1024:.1f} MiB after the load "
      f"({(rss2 - rss0) / n:.0f} KiB per session)")
print(f"daemon CPU while the {n} sessions idle: {idle_cpu:.1f}% of one CPU")
print(f"{lst[0]} and {base[0]} requests, {conc} connections (keep-alive), 2 wrk threads:")
print(f"  GET /api/sandboxes ({n} sessions, {list_bytes} bytes): {lst[1]:.0f} req/s, "
      f"p50 {lst[2]:.2f} ms, p99 {lst[3]:.2f} ms")
print(f"  GET /assets/style.css (baseline):        {base[1]:.0f} req/s, "
      f"p50 {base[2]:.2f} ms, p99 {base[3]:.2f} ms")
print(f"  ratio list/baseline: throughput {lst[1] / base[1]:.2f}x, p50 {lst[2] / base[2]:.2f}x, "
      f"p99 {lst[3] / base[3]:.2f}x")
a50, x50 = statistics.median(api_t) * 1000, statistics.median(xwd_t) * 1000
print(f"one screenshot of a 1280x1024 display, {len(api_t)} per side, medians: API (PNG, "
      f"{statistics.median(png_bytes) / 1024:.0f} KiB) {a50:.1f} ms (p90 {ms(api_t, 0.9):.1f}), "
      f"xwd -root {x50:.1f} ms (p90 {ms(xwd_t, 0.9):.1f}); ratio {a50 / x50:.2f}x")
