#!/usr/bin/env python3
"""Measure (and optionally avoid) interference from other processes on a shared machine.

  quiet.py wait [--max-wait S]
      Wait until the whole machine has been idle (< 6 % CPU busy) for about 6 s.
      Exits 0 when quiet, 1 when --max-wait (default 1800 s) ran out.

  quiet.py run --stdout FILE --stderr FILE --stats FILE -- COMMAND [ARGS...]
      Run COMMAND, and write to --stats a JSON object with its wall time and how much CPU
      *other* processes used meanwhile: others_cpu_pct = (machine busy time - COMMAND's own CPU
      time) / (wall time x cores). Exits with COMMAND's exit status.

With 2 cores and a benchmark on 2 threads, any other busy process takes a core away from one of
the benchmark's threads at every barrier; decode speed can drop 5-10x. Linux only (/proc/stat).
Standard library only.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def busy_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)  # busy = all but idle and iowait


def busy_pct(dt):
    b1, t1 = busy_jiffies()
    time.sleep(dt)
    b2, t2 = busy_jiffies()
    return 100.0 * (b2 - b1) / max(1, t2 - t1)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cmd_wait(a):
    start, quiet, last_note = time.time(), 0, 0.0
    while time.time() - start < a.max_wait:
        b = busy_pct(2.0)
        quiet = quiet + 1 if b < 6.0 else 0
        if quiet >= 3:
            return 0
        if time.time() - last_note > 60:
            print(f"bench: waiting for a quiet machine (CPU {b:.0f}% busy, load {loadavg()})", file=sys.stderr)
            last_note = time.time()
    print(f"bench: the machine did not get quiet within {a.max_wait:.0f} s; running anyway", file=sys.stderr)
    return 1


def cmd_run(a):
    cmd = a.command[1:] if a.command and a.command[0] == "--" else a.command
    if not cmd:
        print("quiet.py run: no command", file=sys.stderr)
        return 2
    la = loadavg()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, _ = busy_jiffies()
    w0 = time.time()
    with open(a.stdout, "w") as out, open(a.stderr, "w") as err:
        rc = subprocess.call(cmd, stdout=out, stderr=err)
    w1 = time.time()
    b1, _ = busy_jiffies()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    wall = max(w1 - w0, 1e-6)
    others = max(0.0, (b1 - b0) / TICK - ours) / (wall * NCPU) * 100.0
    stats = {
        "command": os.path.basename(cmd[0]),
        "exit_code": rc,
        "wall_s": round(wall, 2),
        "own_cpu_s": round(ours, 2),
        "others_cpu_pct": round(others, 1),
        "loadavg_before": la,
        "loadavg_after": loadavg(),
    }
    with open(a.stats, "w") as f:
        json.dump(stats, f)
        f.write("\n")
    print(f"bench:   {stats['command']}: {wall:.1f} s, other processes used {others:.0f}% of the CPU", file=sys.stderr)
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--max-wait", type=float, default=1800.0)
    r = sub.add_parser("run")
    r.add_argument("--stdout", required=True)
    r.add_argument("--stderr", required=True)
    r.add_argument("--stats", required=True)
    r.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    return cmd_wait(a) if a.what == "wait" else cmd_run(a)


if __name__ == "__main__":
    sys.exit(main())
