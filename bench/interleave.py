#!/usr/bin/env python3
"""Times commands interleaved: round after round, each command once, in rotating order, so that
a busy neighbour or a CPU frequency change hits every command alike (hyperfine runs all of one
command, then all of the next). Prints median and p90 wall time of each, and the ratio and
difference of each median against the FIRST command (the reference), and against every command
named with --vs.

Usage: interleave.py RUNS WARMUP [--vs NAME]... NAME=COMMAND...

Each COMMAND is split into words as a shell would (shlex) and exec'd directly, with no shell
in between (like `hyperfine -N`): a shell start costs a few ms, the same on every side, and so
would flatter every ratio. Leading words of the form `VAR=VALUE` set an environment variable,
and `N<PATH` opens PATH read-only as the command's fd N (bwrap's `--seccomp N`), as in a shell.
"""

import os
import shlex
import statistics
import subprocess
import sys
import time


def parse(command):
    """(argv, env, {fd: path}) from a command line with shell-like leading assignments."""
    words, env, fds = shlex.split(command), dict(os.environ), {}
    while words:
        w = words[0]
        if "<" in w and w.split("<", 1)[0].isdigit():
            fd, path = w.split("<", 1)
            fds[int(fd)] = path
        elif "=" in w and w.split("=", 1)[0].isidentifier():
            k, v = w.split("=", 1)
            env[k] = v
        else:
            break
        words = words[1:]
    return words, env, fds


def run_once(argv, env, fds):
    """Wall time in ms of one run: the file opens before the clock starts, then spawn and wait."""
    opened = []
    try:
        for fd, path in fds.items():
            f = os.open(path, os.O_RDONLY)
            if f != fd:
                os.dup2(f, fd, inheritable=True)
                os.close(f)
            else:
                os.set_inheritable(fd, True)
            opened.append(fd)
        t = time.perf_counter()
        p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, pass_fds=opened)
        return (time.perf_counter() - t) * 1000, p.returncode
    finally:
        for fd in opened:
            os.close(fd)


def main(argv):
    runs, warmup = int(argv[1]), int(argv[2])
    rest, also = argv[3:], []
    while rest and rest[0] == "--vs":
        also.append(rest[1])
        rest = rest[2:]
    cases = [(name, parse(cmd), cmd) for name, cmd in (a.split("=", 1) for a in rest)]
    times = {name: [] for name, _, _ in cases}
    for r in range(warmup + runs):
        order = cases[r % len(cases):] + cases[: r % len(cases)]
        for name, (args, env, fds), cmd in order:
            elapsed, code = run_once(args, env, fds)
            if code != 0:
                sys.exit(f"{name} failed with exit code {code}: {cmd}")
            if r >= warmup:
                times[name].append(elapsed)
    medians = {name: statistics.median(t) for name, t in times.items()}
    refs = [cases[0][0]] + also
    for name, _, _ in cases:
        t = sorted(times[name])
        med = medians[name]
        p90 = t[int(0.9 * (len(t) - 1))]
        line = f"  {name:<34} median {med:7.2f} ms   p90 {p90:7.2f} ms"
        for ref_name in refs:
            if name != ref_name:
                ref = medians[ref_name]
                line += f"   {med / ref:.2f}x {ref_name}, {med - ref:+.2f} ms"
        print(line)


if __name__ == "__main__":
    main(sys.argv)
