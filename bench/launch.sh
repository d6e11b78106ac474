#!/usr/bin/env bash
# Launch overhead of `wrapix run -- true` against the equivalent raw `bwrap … true` and against a
# minimal bwrap, measured in the same run, interleaved (bench/interleave.py: median and p90 of N
# rounds, default 50), printed as ratios. Every command is exec'd directly by interleave.py, as
# the bench user, with no shell or setpriv in between (as `hyperfine -N`): a shell's ~5 ms on
# each side would flatter the ratios.
#   bench/launch.sh [RUNS]        (as root, runs as $WRAPIX_BENCH_USER, default `ci`)
# With WRAPIX_BENCH_BEFORE=DIR (a folder holding an earlier build's wrapix and wrapix-init),
# that build runs in the same rounds too: a before/after comparison under the same load.
# Targets: network none ≤ 1.2× raw bwrap and < 10 ms added (issue #2); ≤ 1.5× the minimal bwrap
# (issue 17); on 2026-12-06 (load 1.5, the bench's own): 2.08x minimal, 1.60x raw, and the floor (the whole
# plan under a supervisor that does nothing else) 1.57x minimal (docs/sandbox.md, "Start-up
# cost"). The network-open case (pasta start-up) is printed separately, against raw bwrap
# wrapped by pasta.
set -euo pipefail
runs="${1:-50}"
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build-release.sh" --quiet -p wrapix-cli --bin wrapix --bin wrapix-init
work="$(mktemp -d /tmp/wrapix-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
install -m 755 "${CARGO_TARGET_DIR:-$root/target}/release/wrapix" "${CARGO_TARGET_DIR:-$root/target}/release/wrapix-init" "$work/"
# The floor of any supervising launcher (bench/floor.rs): a small static process that starts the
# raw plan, waits and exits. Static where libc.a is there (as wrapix-init), else dynamic.
rustc --edition 2021 -O -C target-feature=+crt-static -o "$work/floor" "$root/bench/floor.rs" 2>/dev/null ||
  rustc --edition 2021 -O -o "$work/floor" "$root/bench/floor.rs"
before=()
if [ -n "${WRAPIX_BENCH_BEFORE:-}" ]; then
  mkdir "$work/before"
  install -m 755 "$WRAPIX_BENCH_BEFORE/wrapix" "$WRAPIX_BENCH_BEFORE/wrapix-init" "$work/before/"
  before=("wrapix run --network none, before=$work/before/wrapix run --network none -- true")
fi
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
export XDG_CACHE_HOME="$work/home/.cache"

# The raw equivalent: wrapix's own plan, with generated files as plain files and without the
# pieces only wrapix needs (status/block fds, its binary and notification folder under
# /run/wrapix). Same namespaces, mounts, seccomp filter (on fd 9) and PID 1: wrapix's init is
# always PID 1 (`--as-pid-1 … -- /run/wrapix/bin/wrapix-init -- COMMAND`, not dumpable), so the
# raw plan binds wrapix-init and runs `wrapix-init -- true` too. Printed beside it: the same plan
# with `true` itself as PID 1 (bare: what the init costs), and the minimal bwrap (issue 17:
# --unshare-all, read-only /usr and its merged-usr links, /proc, /dev, a tmpfs /tmp, the project
# at /workspace, no seccomp), and wrapix without its /etc cache (a cache folder it cannot create:
# the per-entry binds of before). On a terminal a pty sits in between: that case is printed
# separately, both sides under script(1).
# One run first, so that the plan uses the cached /etc it would use (a dry run never builds it).
"${as[@]}" "$work/wrapix" run --network none -- true
"${as[@]}" "$work/wrapix" run --network none --dry-run -- true > "$work/plan.txt"
"$work/wrapix" __seccomp-bpf > "$work/seccomp.bpf"
chmod 644 "$work/seccomp.bpf"
bench_uid="$("${as[@]}" id -u)"
python3 - "$work" "$bench_uid" <<'PY'
import shlex, sys, os
work, uid = sys.argv[1], int(sys.argv[2])
toks = []
for line in open(f"{work}/plan.txt"):
    toks += line.split()
def raw(with_init, with_run_dir=False):
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
        if t in ("/run/wrapix/bin/wrapix-init", "/run/wrapix/bin/wrapix") and toks[i + 1] in ("--", "__init"):
            out += (["/run/wrapix/bin/wrapix-init", "--"] if with_init else []) + ["true"]; break
        if t == "--ro-bind" and toks[i + 2] == "/run/wrapix/bin/wrapix-init":
            if with_init:
                out += [t, f"{work}/wrapix-init", toks[i + 2]]
            i += 3; continue
        # wrapix's own pieces under /run/wrapix (its binary, notify links and folder).
        if t in ("--ro-bind", "--bind", "--symlink") and toks[i + 2].startswith("/run/wrapix/"):
            if with_run_dir:
                out += toks[i:i + 3]
            i += 3; continue
        out.append(t); i += 1
    return out
def minimal():
    out = [toks[0], "--unshare-all"] + (["--unshare-user"] if uid == 0 else [])
    out += ["--ro-bind", "/usr", "/usr"]
    for i, t in enumerate(toks):
        if t == "--symlink" and toks[i + 1].startswith("usr/") and toks[i + 2].count("/") == 1:
            out += ["--symlink", toks[i + 1], toks[i + 2]]
    out += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--bind", f"{work}/home/project", "/workspace", "--chdir", "/workspace", "true"]
    return out
q = lambda args: " ".join(shlex.quote(x) for x in args)
open(f"{work}/raw.sh", "w").write(q(raw(True)))
open(f"{work}/whole.sh", "w").write(q(raw(True, with_run_dir=True)))
open(f"{work}/bare.sh", "w").write(q(raw(False)))
open(f"{work}/minimal.sh", "w").write(q(minimal()))
PY
raw="$(cat "$work/raw.sh")"
whole="$(cat "$work/whole.sh")"
bare="$(cat "$work/bare.sh")"
minimal="$(cat "$work/minimal.sh")"
pasta="pasta --config-net --quiet --no-map-gw -t none -u none -T none -U none --"
seccomp="9<$work/seccomp.bpf"
wrapix_none="$work/wrapix run --network none -- true"
# interleave.py runs as the bench user (dropped once, here) and execs each command directly,
# with no shell or setpriv in between: `9<FILE` opens the seccomp filter as fd 9 and
# `VAR=VALUE` sets the environment, as in a shell, but in interleave.py itself.
# (The system's python3: one under root's home, such as pyenv's, is not the bench user's to run.)
py=python3
[ "${#as[@]}" -gt 0 ] && [ -x /usr/bin/python3 ] && py=/usr/bin/python3
bench() { "${as[@]}" "$py" "$root/bench/interleave.py" "$@"; }

echo "launch overhead, $runs interleaved rounds (wall time per launch, no shell in between)"
echo "network none:"
bench "$runs" 5 --vs "minimal bwrap" \
  "raw bwrap (wrapix-init as PID 1)=$seccomp $raw" \
  "wrapix run --network none=$wrapix_none" \
  "raw bwrap, true as PID 1 (bare)=$seccomp $bare" \
  "whole plan: raw + /run/wrapix=$seccomp $whole" \
  "floor: whole plan under a static supervisor=$seccomp $work/floor $whole" \
  "minimal bwrap=$minimal" \
  "wrapix, /etc bound per entry=XDG_CACHE_HOME=/proc/wrapix-no-cache $wrapix_none" \
  "${before[@]}"
echo "network open (pasta):"
bench "$runs" 3 \
  "raw pasta + bwrap=$seccomp $pasta $raw" \
  "wrapix run (network open)=$work/wrapix run -- true"
echo "on a terminal (a pty in between; both under script(1), which starts a shell):"
term() { echo "script -qec $(printf %q "exec $1") /dev/null"; }
bench "$runs" 3 \
  "raw bwrap=$(term "$seccomp $raw")" \
  "wrapix run --network none=$(term "$wrapix_none")"
echo "targets: network none <= 1.2x raw bwrap and < 10 ms added (issue #2);"
echo "         wrapix run --network none <= 1.5x minimal bwrap (issue 17);"
echo "whole plan: the raw plan plus wrapix's binary, notification folder and links under"
echo "       /run/wrapix (all but the status fd), run directly;"
echo "floor: the whole plan started by a small static process that waits for it and exits"
echo "       (bench/floor.rs): the least a launcher that outlives its sandbox can cost;"
echo "       wrapix's ratio cannot go below the floor's"
