#!/usr/bin/env bash
# Launch overhead of `wrapix run -- true` against the equivalent raw `bwrap … true`, measured in
# the same run, interleaved (bench/interleave.py: median and p90 of N rounds, default 50),
# printed as ratios.
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
install -m 755 "${CARGO_TARGET_DIR:-$root/target}/release/wrapix" "${CARGO_TARGET_DIR:-$root/target}/release/wrapix-init" "$work/"
mkdir -p "$work/home/project" "$work/runtime"
chmod 700 "$work/runtime"
as=()
if [ "$(id -u)" -eq 0 ]; then
  user="${WRAPIX_BENCH_USER:-ci}"
  chown -R "$user" "$work/home" "$work/runtime"
  as=(setpriv --reuid "$(id -u "$user")" --regid "$(id -g "$user")" --init-groups --)
fi
cd "$work/home/project"
export HOME="$work/home"
# As in a login session: a private runtime folder (notifications register the session there).
export XDG_RUNTIME_DIR="$work/runtime"

# The raw equivalent: wrapix's own plan, with generated files as plain files and without the
# pieces only wrapix needs (status/block fds, /run/wrapix). Same namespaces, mounts, seccomp
# filter (on fd 9) and PID 1: without a terminal, wrapix leaves PID 1 to bwrap's own init. The
# plan with --as-pid-1 (no init at all) is printed too, as the bare minimum. On a terminal,
# wrapix's own init is PID 1 and a pty sits in between: that case is printed separately, both
# sides run under script(1).
"${as[@]}" "$work/wrapix" run --network none --dry-run -- true > "$work/plan.txt"
"$work/wrapix" __seccomp-bpf > "$work/seccomp.bpf"
chmod 644 "$work/seccomp.bpf"
python3 - "$work" <<'PY'
import shlex, sys, os
work = sys.argv[1]
toks = []
for line in open(f"{work}/plan.txt"):
    toks += line.split()
def raw(own_pid1):
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
        if t in ("--info-fd", "--json-status-fd", "--block-fd"):
            i += 2; continue
        if t == "--new-session" and not own_pid1:
            out += [t, "--as-pid-1"]; i += 1; continue
        if t in ("/run/wrapix/bin/wrapix-init", "/run/wrapix/bin/wrapix") and toks[i + 1] in ("--", "__init"):
            out += ["true"]; break
        # wrapix's own pieces under /run/wrapix (its binary, notify links and folder).
        if t in ("--ro-bind", "--bind", "--symlink") and toks[i + 2].startswith("/run/wrapix/"):
            i += 3; continue
        out.append(t); i += 1
    return " ".join(shlex.quote(x) for x in out)
open(f"{work}/raw.sh", "w").write(raw(True))
open(f"{work}/bare.sh", "w").write(raw(False))
PY
raw="$(cat "$work/raw.sh")"
bare="$(cat "$work/bare.sh")"
pasta="pasta --config-net --quiet --no-map-gw -t none -u none -T none -U none --"
as_s="${as[*]:-}"
# Every command runs as `bash -c 'exec …'` (the fd 9 redirection needs a shell), so each
# side pays the same shell start.
run() { echo "$as_s bash -c 'exec $1'"; }
seccomp="9<$work/seccomp.bpf"

echo "launch overhead, $runs interleaved rounds (wall time per launch)"
echo "network none:"
python3 "$root/bench/interleave.py" "$runs" 5 \
  "raw bwrap=$(run "$seccomp $raw")" \
  "wrapix run --network none=$(run "$work/wrapix run --network none -- true")" \
  "raw bwrap, no PID 1 (bare)=$(run "$seccomp $bare")"
echo "network open (pasta):"
python3 "$root/bench/interleave.py" "$runs" 3 \
  "raw pasta + bwrap=$(run "$seccomp $pasta $raw")" \
  "wrapix run (network open)=$(run "$work/wrapix run -- true")"
echo "on a terminal (wrapix: its init as PID 1 and a pty; both under script(1)):"
term() { echo "script -qec $(printf %q "$1") /dev/null"; }
python3 "$root/bench/interleave.py" "$runs" 3 \
  "raw bwrap=$(term "$(run "$seccomp $raw")")" \
  "wrapix run --network none=$(term "$(run "$work/wrapix run --network none -- true")")"
echo "targets (issue #2): network none <= 1.2x raw bwrap and < 10 ms added"
