#!/usr/bin/env python3
"""Times shell commands interleaved: round after round, each command once, in rotating order, so
that a busy neighbour or a CPU frequency change hits every command alike (hyperfine runs all of
one command, then all of the next). Prints median and p90 wall time of each, and the ratio and
difference of each median against the FIRST command (the reference), and against every command
named with --vs.

Usage: interleave.py RUNS WARMUP [--vs NAME]... NAME=COMMAND...   (each COMMAND runs through
`bash -c`)
"""

import statistics
import subprocess
import sys
import time


def main(argv):
    runs, warmup = int(argv[1]), int(argv[2])
    rest, also = argv[3:], []
    while rest and rest[0] == "--vs":
        also.append(rest[1])
        rest = rest[2:]
    cases = [a.split("=", 1) for a in rest]
    times = {name: [] for name, _ in cases}
    for r in range(warmup + runs):
        order = cases[r % len(cases):] + cases[: r % len(cases)]
        for name, cmd in order:
            t = time.perf_counter()
            p = subprocess.run(["bash", "-c", cmd], stdout=subprocess.DEVNULL)
            elapsed = (time.perf_counter() - t) * 1000
            if p.returncode != 0:
                sys.exit(f"{name} failed with exit code {p.returncode}: {cmd}")
            if r >= warmup:
                times[name].append(elapsed)
    medians = {name: statistics.median(t) for name, t in times.items()}
    refs = [cases[0][0]] + also
    for name, _ in cases:
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
