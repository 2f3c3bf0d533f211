"""The write and read benchmarks, for the scripts of an older commit and this checkout's, in
one run, side by side.

    .venv/bin/python bench/compare.py [--old REF] [--events 300000] [--rounds 2]

Each round runs bench_write.py and bench_read.py for the old scripts (taken from git at REF),
then for the new, so that both meet the same machine and moto server; a mode's figure is its
best rate over the rounds. Prints each mode's events per second, old and new, their ratio
(new over old: above 1 is faster), and each side's peak RSS.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHES = {  # bench script -> the modes its `measured` lines stand for, in their order
    "bench_write.py": None,  # names its modes itself
    "bench_read.py": ["read: baseline", "read: one object per event", "read: batches",
                      "read: plain reader, batches", "read: one big object"],
}
MEASURED = re.compile(r"^measured (.+?): (\{.*\})$")
OLD = "dc10ea7"  # the last commit whose scripts were written by hand, before nxlog_s3/


def scripts_at(ref, folder):
    """The two scripts as they were at REF, in FOLDER."""
    for name in ("s3_write.py", "s3_read.py"):
        text = subprocess.run(["git", "show", "%s:%s" % (ref, name)], cwd=ROOT, check=True,
                              capture_output=True).stdout
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(text)
    return folder


def run_bench(bench, scripts, arguments):
    """{mode: figures} of one run of BENCH on the scripts in the folder SCRIPTS."""
    command = [sys.executable, os.path.join(ROOT, "bench", bench), "--events",
               str(arguments.events), "--single-events", str(arguments.single_events)]
    command += ["--big-mb", str(arguments.big_mb)] if bench == "bench_read.py" else \
        ["--baseline-events", str(arguments.single_events)]
    output = subprocess.run(command, env=dict(os.environ, BENCH_SCRIPTS=scripts),
                            capture_output=True, text=True, check=True).stdout
    measured = [MEASURED.match(line) for line in output.splitlines()]
    measured = [(match.group(1), json.loads(match.group(2))) for match in measured if match]
    names = BENCHES[bench] or ["write: " + name for name, _ in measured]
    return {name: figures for name, (_, figures) in zip(names, measured)}


def rate(figures):
    return figures["events"] / figures["seconds"] if figures.get("seconds") else None


def best(runs):
    """Per mode, the run with the best rate."""
    modes = {}
    for run in runs:
        for mode, figures in run.items():
            if rate(figures) is not None and (mode not in modes or
                                              rate(figures) > rate(modes[mode])):
                modes[mode] = figures
    return modes


def report(old, new, ref):
    print("%-30s %12s %12s %9s %10s %10s" % ("mode", "old ev/s", "new ev/s", "new/old",
                                            "old RSS", "new RSS"))
    for mode in new:
        if mode not in old:
            continue
        print("%-30s %12.0f %12.0f %9.2f %7.0f MB %7.0f MB" % (
            mode, rate(old[mode]), rate(new[mode]), rate(new[mode]) / rate(old[mode]),
            old[mode].get("rss_mb", 0), new[mode].get("rss_mb", 0)))
    print("old: the scripts at %s; new: this checkout's" % ref)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--old", default=OLD, help="the git commit of the old scripts")
    parser.add_argument("--events", type=int, default=300000, help="events in batches")
    parser.add_argument("--single-events", type=int, default=2000,
                        help="events stored one object each")
    parser.add_argument("--big-mb", type=int, default=64, help="the reader's one big object")
    parser.add_argument("--rounds", type=int, default=2, help="old then new, this many times")
    arguments = parser.parse_args()
    runs = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as folder:
        sides = {"old": scripts_at(arguments.old, folder), "new": ROOT}
        for number in range(arguments.rounds):
            for side in ("old", "new"):
                figures = {}
                for bench in BENCHES:
                    figures.update(run_bench(bench, sides[side], arguments))
                runs[side].append(figures)
                sys.stderr.write("round %d, %s: done\n" % (number + 1, side))
    report(best(runs["old"]), best(runs["new"]), arguments.old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
