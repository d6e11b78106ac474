#!/usr/bin/env bash
# Launch overhead of `wrapix run -- true` against the equivalent raw `bwrap … true`, measured in
# the same run with hyperfine (median of N runs, default 50), printed as ratios.
#   bench/launch.sh [RUNS]        (as root, runs as $WRAPIX_BENCH_USER, default `ci`)
# Targets (issue #2): network none ≤ 1.2× raw bwrap and < 10 ms added. The network-open case
# (pasta start-up) is printed separately, against raw bwrap wrapped by pasta.
set -euo pipefail
runs="${1:-50}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
work="$(mktemp -d /tmp/wrapix-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
install -m 755 "$root/target/release/wrapix" "$work/wrapix"
mkdir -p "$work/home/project"
as=()
if [ "$(id -u)" -eq 0 ]; then
  user="${WRAPIX_BENCH_USER:-ci}"
  chown -R "$user" "$work/home"
  as=(setpriv --reuid "$(id -u "$user")" --regid "$(id -g "$user")" --init-groups --)
fi
cd "$work/home/project"
export HOME="$work/home"

# The raw equivalent: wrapix's own plan, with generated files as plain files and without the
# pieces only wrapix needs (info/block fds, its init). Same namespaces, mounts and seccomp
# filter (on fd 9). Both sides run under `bash -c 'exec …'` so that the fd can be opened.
"${as[@]}" "$work/wrapix" run --network none --dry-run -- true > "$work/plan.txt"
"$work/wrapix" __seccomp-bpf > "$work/seccomp.bpf"
chmod 644 "$work/seccomp.bpf"
python3 - "$work" <<'PY'
import shlex, sys, os
work = sys.argv[1]
toks = []
for line in open(f"{work}/plan.txt"):
    toks += line.split()
out, i, n = [], 0, 0
while i < len(toks):
    t = toks[i]
    if t in ("--ro-bind-data", "--file"):
        n += 1
        path = f"{work}/data{n}"
        open(path, "w").write("x\n")
        os.chmod(path, 0o644)
        out += ["--ro-bind", path, toks[i + 2]]; i += 3; continue
    if t == "--seccomp":
        out += ["--seccomp", "9"]; i += 2; continue
    if t in ("--info-fd", "--block-fd"):
        i += 2; continue
    if t == "/run/wrapix/bin/wrapix" and toks[i + 1] == "__init":
        out += ["true"]; break
    if t == "--ro-bind" and toks[i + 2] == "/run/wrapix/bin/wrapix":
        i += 3; continue
    out.append(t); i += 1
open(f"{work}/raw.sh", "w").write(" ".join(shlex.quote(x) for x in out))
PY
raw="$(cat "$work/raw.sh")"
pasta_raw="pasta --config-net --quiet --no-map-gw -t none -u none -T none -U none -- $raw"
as_s="${as[*]:-}"
sh_raw="exec 9<$work/seccomp.bpf; exec $raw"
sh_pasta="exec 9<$work/seccomp.bpf; exec $pasta_raw"

hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/none.json" \
  -n "raw bwrap" "$as_s bash -c '$sh_raw'" \
  -n "wrapix --network none" "$as_s bash -c 'exec $work/wrapix run --network none -- true'" >/dev/null
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/open.json" \
  -n "raw pasta+bwrap" "$as_s bash -c '$sh_pasta'" \
  -n "wrapix (network open)" "$as_s bash -c 'exec $work/wrapix run -- true'" >/dev/null

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def load(name):
    r = json.load(open(f"{work}/{name}.json"))["results"]
    return [(x["command"], x["median"] * 1000) for x in r]
print("launch overhead (median of hyperfine runs, ms)")
for case in ("none", "open"):
    (rn, rm), (wn, wm) = load(case)
    print(f"  {rn:<24} {rm:7.2f} ms")
    print(f"  {wn:<24} {wm:7.2f} ms   ratio {wm / rm:.2f}x   added {wm - rm:+.2f} ms")
PY
