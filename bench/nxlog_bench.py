"""Benchmark under a real NXLog CE: every mode in one run, so that the ratios hold on a
noisy machine (make bench).

    .venv/bin/python bench/nxlog_bench.py [--events 500000] [--rounds 1] [--json]

Needs a real NXLog (`make nxlog` builds one from ../shared/nxlog/) and starts moto server on
127.0.0.1. Each mode is a process of NXLog's own, timed from its start ("started" in its log)
until its last event is where the mode takes it: in S3 (every event counted by the objects'
metadata, looked up once the writer's spool holds no batch), or written by the output.
Lines of about 130 bytes, as im_file reads them:

  writer side, from a file of --events lines (one object per event: --single-events)
  - im_file -> om_file: NXLog's ceiling;
  - im_file -> om_python whose write_data reads two fields and counts;
  - floor: every field -> one JSON line -> os.write() (bench/nxlog/floor_write.py), and the
    same with NXLog's C library called directly, the most Python can make of it;
  - s3_write.py, gzip JSON lines with zoned times, in batches of 10,000 events (the
    README's advice; the last one closes with its last event when --events is a multiple
    of it, else after BATCH_AGE=1 s); the same as Parquet; one object per event;
  reader side, into om_file, from the batches the writer stored
  - im_python that only makes and posts events: NXLog's ceiling for a Python input;
  - plain reader: a GET, gunzip, json.loads a line, set_field each field, post, and the
    same with NXLog's C library called directly: the ceiling of a reader in Python;
  - s3_read.py from the gzip JSON-line batches, and from the Parquet ones;
  memory
  - s3_write.py spooling --spooled-events events while S3 is down (nothing listens);
  - s3_read.py reading one object of --large-object-mb MiB (JSON lines, uncompressed).

Prints events/s, the NXLog process's CPU time per event (user and system, all its
threads: steadier than events/s on a busy machine) and its peak RSS (VmHWM) per mode, the ratios
the project is held to (s3_write.py over the floor, s3_read.py over the plain reader), and
the memory modes' peak RSS against 120 MB. With --rounds N, every mode runs N times, one
round after another, and each mode's median run is shown. --json prints one JSON object
instead, --markdown the README's table. Messages go to stderr. moto server shares the two
cores with NXLog. --set NAME=VALUE changes a setting of the scripts' modes.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "bench", "nxlog")
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]  # the stub, and the tests' helpers
# The folder of the scripts measured: this checkout's, or another's.
SCRIPTS = os.environ.get("BENCH_SCRIPTS") or ROOT

from common import sample_lines, start_moto  # noqa: E402

from real_nxlog import BINARY, PYTHONPATH, SYSTEM_PATH, conf_text, missing  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"  # the Python NXLog embeds, for `s3_write.py status`

LINE_BYTES = 130
EVENTS_METADATA = "nxlog-s3-events"
FILE_INPUT = """<Input source>
    Module          im_file
    File            "%(log)s"
    SavePos         FALSE
    ReadFromLast    FALSE
</Input>
"""
FILE_OUTPUT = """<Output sink>
    Module  om_file
    File    "%(out)s"
</Output>
"""
PYTHON_OUTPUT = """<Output sink>
    Module      om_python
    PythonCode  %(code)s
</Output>
"""
PYTHON_INPUT = """<Input source>
    Module      im_python
    PythonCode  %(code)s
</Input>
"""
ROUTE = """<Route bench>
    Path  source => sink
</Route>
"""


def writer_mode(code):
    return FILE_INPUT + PYTHON_OUTPUT + ROUTE, code


def reader_mode(code):
    return PYTHON_INPUT + FILE_OUTPUT + ROUTE, code


# name: (side, configuration, PythonCode, settings for the scripts, where the events end)
MODES = [
    ("im_file -> om_file", "writer", FILE_INPUT + FILE_OUTPUT + ROUTE, None, {}, "lines"),
    ("im_file -> om_python: two fields, a count", "writer",
     *writer_mode(os.path.join(HERE, "count_write.py")), {}, "done"),
    ("floor: every field -> JSON line -> os.write", "writer",
     *writer_mode(os.path.join(HERE, "floor_write.py")), {}, "done"),
    ("floor, NXLog's C library called directly", "writer",
     *writer_mode(os.path.join(HERE, "direct_write.py")), {}, "done"),
    ("s3_write.py: gzip JSON lines", "writer", *writer_mode(os.path.join(SCRIPTS, "s3_write.py")),
     {"SERVER": "jsonl", "FORMAT": "json", "BATCH_EVENTS": 10000, "BATCH_AGE": 1}, "s3"),
    ("s3_write.py: Parquet", "writer", *writer_mode(os.path.join(SCRIPTS, "s3_write.py")),
     {"SERVER": "parquet", "FORMAT": "parquet", "BATCH_EVENTS": 10000, "BATCH_AGE": 1}, "s3"),
    ("s3_write.py: one object per event", "single",
     *writer_mode(os.path.join(SCRIPTS, "s3_write.py")), {"SERVER": "single"}, "s3"),
    ("im_python -> om_file: make and post", "reader",
     *reader_mode(os.path.join(HERE, "post_read.py")), {}, "lines"),
    ("plain reader: json.loads, set_field, post", "reader",
     *reader_mode(os.path.join(HERE, "plain_read.py")), {"SERVER": "jsonl"}, "lines"),
    ("plain reader, NXLog's C library called directly", "reader",
     *reader_mode(os.path.join(HERE, "direct_read.py")), {"SERVER": "jsonl"}, "lines"),
    ("s3_read.py: gzip JSON lines", "reader", *reader_mode(os.path.join(SCRIPTS, "s3_read.py")),
     {"SERVER": "jsonl"}, "lines"),
    ("s3_read.py: Parquet", "reader", *reader_mode(os.path.join(SCRIPTS, "s3_read.py")),
     {"SERVER": "parquet"}, "lines"),
    ("s3_write.py: events spooled while S3 is down", "spooled",
     *writer_mode(os.path.join(SCRIPTS, "s3_write.py")),
     {"SERVER": "spooled", "FORMAT": "json", "BATCH_EVENTS": 10000}, "spooled"),
    ("s3_read.py: one large object (JSON lines)", "large",
     *reader_mode(os.path.join(SCRIPTS, "s3_read.py")), {"SERVER": "large"}, "lines"),
]
MEMORY_SIDES = ("spooled", "large")  # the memory modes' sides
WRITER_SIDES = ("writer", "single", "spooled")  # the sides whose input is a file of lines
MEMORY_LIMIT_MB = 120  # the peak RSS the memory modes are held under
RATIOS = [("floor, NXLog's C library called directly",
           "floor: every field -> JSON line -> os.write", None),
          ("s3_write.py: gzip JSON lines", "floor: every field -> JSON line -> os.write", 0.9),
          ("s3_write.py: Parquet", "floor: every field -> JSON line -> os.write", None),
          ("plain reader, NXLog's C library called directly",
           "plain reader: json.loads, set_field, post", None),
          ("s3_read.py: gzip JSON lines", "plain reader: json.loads, set_field, post", 1.3),
          ("s3_read.py: Parquet", "plain reader: json.loads, set_field, post", None)]


def dead_endpoint():
    """An S3 endpoint on 127.0.0.1 that refuses every connection: S3 down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return "http://127.0.0.1:%d" % sock.getsockname()[1]


def put_large_object(client, bucket, folder, size):
    """One batch of at least SIZE bytes, JSON lines uncompressed as s3_write.py stores them
    with COMPRESSION=none, under large/; how many events it holds. Its lines repeat every
    4,096 events, which changes nothing for memory."""
    zoned = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    block = "".join(json.dumps({"raw_event": line, "EventReceivedTime": zoned,
                                "SourceModuleName": "source", "SourceModuleType": "im_file"},
                               separators=(",", ":")) + "\n"
                    for line in sample_lines()).encode()
    repeats = -(-size // len(block))
    path = os.path.join(folder, "large.jsonl")
    with open(path, "wb") as handle:
        for _ in range(repeats):
            handle.write(block)
    events = repeats * len(sample_lines())
    client.upload_file(path, bucket, time.strftime("large/%Y-%m-%d/%H.%M.%S.1.jsonl",
                                                   time.gmtime()),
                       ExtraArgs={"Metadata": {
                           "nxlog-s3-version": "1", "nxlog-s3-format": "jsonl",
                           "nxlog-s3-compression": "none", "nxlog-s3-events": str(events),
                           "nxlog-s3-times": "zoned"}})
    os.unlink(path)
    return events


class SpooledEvents(object):
    """How many events the writer's spool holds, as `s3_write.py status --json` says."""

    def __init__(self, env):
        self.command = [SYSTEM_PYTHON, os.path.join(SCRIPTS, "s3_write.py"), "status",
                        "--json"]
        self.env = dict(env, PATH=SYSTEM_PATH, PYTHONPATH=PYTHONPATH, LANG="C.UTF-8")

    def __call__(self):
        """The count; 0 while the writer has not made its spool yet (status exits 1 then,
        still printing its JSON)."""
        done = subprocess.run(self.command, env=self.env, capture_output=True)
        if done.returncode not in (0, 1) or not done.stdout:
            raise SystemExit("s3_write.py status failed (exit status %d): %s"
                             % (done.returncode, done.stderr.decode(errors="replace")))
        return json.loads(done.stdout)["events"]


def say(message):
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def write_lines(path, count):
    """COUNT access-log lines of about LINE_BYTES bytes each into PATH."""
    lines = [line[:LINE_BYTES] for line in sample_lines()]
    with open(path, "w") as handle:
        for number in range(count):
            handle.write(lines[number % len(lines)] + "\n")


class LineCounter(object):
    """How many lines a growing file holds, reading only what was added since the last
    look."""

    def __init__(self, path):
        self.path, self.offset, self.lines = path, 0, 0

    def __call__(self):
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                added = handle.read()
        except FileNotFoundError:
            return 0
        self.offset += len(added)
        self.lines += added.count(b"\n")
        return self.lines


class SpoolWatch(threading.Thread):
    """Looks at the writer's SPOOL every 5 ms (a listdir): EMPTY_SINCE is when it was last
    seen holding no batch (no .open nor .data file: the writer deletes one only once S3 has
    it), None while it holds one; FILLED counts the times it was seen holding one again. A
    batch lives in the spool 30 ms at least (fsync, gzip, PUT): none goes unseen."""

    def __init__(self, spool):
        threading.Thread.__init__(self, name="spool watch", daemon=True)
        self.spool, self.empty_since, self.filled = spool, None, 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(0.005):
            if self._empty():
                if self.empty_since is None:
                    self.empty_since = time.time()
            elif self.empty_since is not None or not self.filled:
                self.empty_since = None
                self.filled += 1

    def _empty(self):
        try:
            names = os.listdir(self.spool)
        except FileNotFoundError:
            return True
        return not any(name.endswith((".open", ".data")) for name in names)


class StoredEvents(object):
    """How many events S3 holds under PREFIX: one an object, or with BATCHES, the count in
    each object's metadata. S3 is asked only while the writer's spool (WATCH) holds no batch,
    so that the looks cost the two cores little while the writer works: a LIST is some 10 ms
    of CPU on moto and here. Without BATCHES, the spool empties between events: S3 is asked
    every 0.5 s at most.

    STORED_BY: when S3 held what the last look counted, the moment the spool was last seen
    emptying before it, not the end of the look (some 150 ms for 50 objects: the
    benchmark's time, not the writer's). A look during which the spool held a batch again
    counts for nothing: S3 is asked again."""

    def __init__(self, client, bucket, prefix, batches, watch):
        self.client, self.bucket, self.prefix, self.batches = client, bucket, prefix, batches
        self.watch, self.every, self.asked = watch, 0 if batches else 0.5, 0
        self.events = {}
        self.stored_by = None

    def __call__(self):
        filled = self.watch.filled  # first: a batch that comes after it is seen below
        emptied = self.watch.empty_since
        if emptied is None or time.monotonic() < self.asked + self.every:
            return sum(self.events.values())
        self.asked = time.monotonic()
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", ()):
                if item["Key"] not in self.events:
                    self.events[item["Key"]] = self._events_in(item["Key"])
        if self.watch.filled != filled:  # a batch came meanwhile: look again
            return 0
        self.stored_by = emptied
        return sum(self.events.values())

    def _events_in(self, key):
        if not self.batches:
            return 1
        metadata = self.client.head_object(Bucket=self.bucket, Key=key)["Metadata"]
        return int(metadata[EVENTS_METADATA])


class NXLogRun(object):
    """One NXLog process running BODY from FOLDER, with ENV on a clean environment."""

    def __init__(self, folder, body, env):
        os.makedirs(folder)
        self.log_file = os.path.join(folder, "nxlog.log")
        self.conf = os.path.join(folder, "bench.conf")
        with open(self.conf, "w") as handle:
            handle.write(conf_text(folder, body))
        self.env = dict(env, PATH=SYSTEM_PATH, PYTHONPATH=PYTHONPATH, LANG="C.UTF-8")
        self.process = subprocess.Popen([BINARY, "-f", "-c", self.conf], env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def log(self):
        try:
            with open(self.log_file, errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def wait_for(self, condition, what, timeout=300, every=0.02):
        """Waits until CONDITION() is true; the time.time() it was seen true."""
        end = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise SystemExit("NXLog ended (exit status %s) before %s:\n%s"
                                 % (self.process.returncode, what, self.log()[-3000:]))
            if time.monotonic() > end:
                raise SystemExit("%s did not come within %d s:\n%s"
                                 % (what, timeout, self.log()[-3000:]))
            time.sleep(every)
        return time.time()

    def peak_rss_mb(self):
        """NXLog's peak RSS so far (VmHWM), in MiB. Not the rusage's ru_maxrss: that counts
        the memory of this process too, which the child shared until its exec."""
        with open("/proc/%d/status" % self.process.pid) as status:
            return next(int(line.split()[1]) for line in status
                        if line.startswith("VmHWM:")) / 1024.0

    def stop(self):
        """SIGTERM; NXLog's peak RSS in MiB, taken just before, and its rusage as it is
        reaped, for its CPU time."""
        peak = self.peak_rss_mb()
        self.process.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        if self.process.returncode != 0:
            raise SystemExit("NXLog's stop ended with exit status %d:\n%s"
                             % (self.process.returncode, self.log()[-3000:]))
        return peak, usage


def _wait_for_end(nxlog, settings, end, count, out, done, env, client, bucket):
    """Waits for NXLog's start, then for the mode's last event where it takes it; the
    time.time() of each."""
    started = nxlog.wait_for(lambda: " started" in nxlog.log(), "its start", every=0.005)
    if " ERROR " in nxlog.log():
        raise SystemExit("NXLog logged an error at its start:\n%s" % nxlog.log())
    if end == "lines":
        lines = LineCounter(out)
        ended = nxlog.wait_for(lambda: lines() >= count, "%d lines out" % count)
    elif end == "spooled":
        spooled = SpooledEvents(env)
        ended = nxlog.wait_for(lambda: spooled() >= count, "%d events in the spool" % count,
                               every=0.5)
    elif end == "done":
        nxlog.wait_for(lambda: os.path.exists(done) and os.path.getsize(done), "the last event")
        with open(done) as handle:
            ended = float(handle.read())
    else:
        batches = "BATCH_EVENTS" in settings
        watch = SpoolWatch(env["NXLOG_S3_SPOOL_DIR"])
        watch.start()
        try:
            stored = StoredEvents(client, bucket, settings["SERVER"] + "/", batches, watch)
            nxlog.wait_for(lambda: stored() >= count, "%d events in S3" % count, every=0.01)
        finally:
            watch.stopping.set()
            watch.join()
        ended = stored.stored_by
    return started, ended


PROFILED = ("s3_write.py: gzip JSON lines", "s3_read.py: gzip JSON lines")


def measure(number, round_number, mode, counts, work, s3_env, client, bucket, extra,
            profile=False):
    """One run of MODE in round ROUND_NUMBER: a writer's rounds after the first store under
    prefixes of their own, the readers read the first's. PROFILE: the scripts' modes of
    PROFILED run under cProfile (bench/nxlog/profiled.py), their profile said."""
    name, side, body, code, settings, end = mode
    profile_file = None
    if profile and name in PROFILED:
        profile_file = os.path.join(work, "profile-%d-%d.txt" % (number, round_number))
        s3_env = dict(s3_env, BENCH_SCRIPT=code, BENCH_PROFILE=profile_file)
        code = os.path.join(HERE, "profiled.py")
    if name.startswith("s3_"):
        settings = dict(settings, **extra)
    if round_number and side in WRITER_SIDES and "SERVER" in settings:
        settings = dict(settings, SERVER="%s-%d" % (settings["SERVER"], round_number))
    folder = os.path.join(work, "mode-%d-%d" % (number, round_number))
    count = counts[side]
    out, done = os.path.join(folder, "out.log"), os.path.join(folder, "done")
    env = dict(s3_env, BENCH_EVENTS=str(count), BENCH_DONE=done, BENCH_OUT=out,
               BENCH_BUCKET=bucket, BENCH_PREFIX=settings.get("SERVER", "") + "/",
               **{"NXLOG_S3_" + key: str(value) for key, value in
                  dict(settings, BUCKET=bucket,
                       SPOOL_DIR=os.path.join(folder, "spool"),
                       CHECKPOINT=os.path.join(folder, "checkpoint")).items()})
    if side == "spooled":
        env["AWS_ENDPOINT_URL"] = dead_endpoint()
    log = os.path.join(work, "%s.log" % side)
    nxlog = NXLogRun(folder, body % {"log": log, "out": out, "code": code}, env)
    try:
        started, ended = _wait_for_end(nxlog, settings, end, count, out, done, env, client,
                                       bucket)
    except BaseException:  # no NXLog left running
        nxlog.process.kill()
        nxlog.process.wait()
        raise
    peak, usage = nxlog.stop()
    if profile_file:
        with open(profile_file) as handle:
            say("profile of %s under NXLog:\n%s" % (name, handle.read()))
    seconds, cpu = ended - started, usage.ru_utime + usage.ru_stime
    return {"mode": name, "events": count, "seconds": round(seconds, 3),
            "events_per_second": round(count / seconds),
            "cpu_us_per_event": round(cpu / count * 1e6, 2),
            "peak_rss_mb": round(peak, 1)}


def median_run(runs):
    """The run of RUNS (one mode's) with the median events/s: the lower middle one of an
    even number."""
    return sorted(runs, key=lambda run: run["events_per_second"])[(len(runs) - 1) // 2]


def ratios(results):
    by_name = {result["mode"]: result for result in results}
    return [{"mode": mode, "over": over, "target": target,
             "ratio": round(by_name[mode]["events_per_second"] /
                            by_name[over]["events_per_second"], 2)}
            for mode, over, target in RATIOS if mode in by_name and over in by_name]


def memory_figures(results):
    """The peak RSS of the memory modes, and the limit they are held under."""
    return [{"mode": result["mode"], "peak_rss_mb": result["peak_rss_mb"],
             "limit_mb": MEMORY_LIMIT_MB}
            for result in results if result["mode"] in {
                name for name, side, *_ in MODES if side in MEMORY_SIDES}]


def figure_lines(figures, memory):
    """The ratios, then the memory modes' peak RSS, as lines of text."""
    return ["%s over %s: %.2f%s" % (figure["mode"], figure["over"], figure["ratio"],
                                    " (target: at least %g)" % figure["target"]
                                    if figure["target"] else "") for figure in figures] + \
        ["%s: peak RSS %.0f MB (limit: %d MB)" % (each["mode"], each["peak_rss_mb"],
                                                  each["limit_mb"]) for each in memory]


def print_table(results, figures, memory):
    print("%-48s %8s %8s %9s %12s %9s" % ("mode", "events", "seconds", "events/s",
                                           "CPU µs/event", "peak RSS"))
    for result in results:
        print("%-48s %8d %8.2f %9d %12.2f %6.0f MB" % (
            result["mode"], result["events"], result["seconds"], result["events_per_second"],
            result["cpu_us_per_event"], result["peak_rss_mb"]))
    print()
    for line in figure_lines(figures, memory):
        print(line)


def print_markdown(results, figures, memory):
    """The table and ratios as the README shows them."""
    print("| mode | events | events/s | NXLog's CPU per event | peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for result in results:
        print("| %s | {:,} | {:,} | %.1f µs | %.0f MB |".format(
            result["events"], result["events_per_second"])
              % (result["mode"].replace("->", "→"), result["cpu_us_per_event"],
                 result["peak_rss_mb"]))
    print()
    for line in figure_lines(figures, memory):
        print("- " + line.replace("->", "→"))


def setting(text):
    """NAME=VALUE, a setting given with --set, as (NAME, VALUE)."""
    name, equals, value = text.partition("=")
    if not equals or not name.isupper():
        raise argparse.ArgumentTypeError("not NAME=VALUE with a setting's NAME: %r" % text)
    return name, value


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--events", type=int, default=500000,
                        help="lines for every mode but one object per event")
    parser.add_argument("--single-events", type=int, default=5000,
                        help="lines for s3_write.py's one object per event")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of every mode, one round after another; each mode's "
                        "median run is shown")
    parser.add_argument("--profile", action="store_true",
                        help="run s3_write.py's and s3_read.py's gzip JSON-line modes under "
                        "cProfile and print where their time goes (on stderr); their rates "
                        "then mean nothing")
    parser.add_argument("--spooled-events", type=int, default=1000000,
                        help="events s3_write.py spools while S3 is down (a memory mode)")
    parser.add_argument("--large-object-mb", type=int, default=1024,
                        help="MiB of the one object s3_read.py reads (a memory mode)")
    parser.add_argument("--only", metavar="TEXT", action="append",
                        help="only the modes whose name holds TEXT (again for more), for a "
                        "look while developing; the ratios need both of their modes")
    parser.add_argument("--set", metavar="NAME=VALUE", action="append", default=[],
                        type=setting, help="a setting of s3_write.py and s3_read.py for "
                        "their modes (again for more), e.g. COMPRESSION=zstd")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON object, for programs")
    output.add_argument("--markdown", action="store_true",
                        help="the table and ratios in Markdown, as the README shows them")
    args = parser.parse_args()
    reason = missing()
    if reason:
        parser.exit(2, "nxlog_bench: %s\n" % reason)
    server, url = start_moto()
    s3_env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "bench",
              "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="bench",
                          aws_secret_access_key="bench", region_name="us-east-1")
    bucket = "nxlog-bench-%d" % os.getpid()
    client.create_bucket(Bucket=bucket)
    counts = {"writer": args.events, "single": args.single_events, "reader": args.events,
              "spooled": args.spooled_events}
    modes = [mode for mode in MODES
             if not args.only or any(text in mode[0] for text in args.only)]
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="nxlog-bench-") as work:
            for side in {mode[1] for mode in modes} & set(WRITER_SIDES):
                write_lines(os.path.join(work, "%s.log" % side), counts[side])
            if any(mode[1] == "large" for mode in modes):
                say("storing an object of %d MiB" % args.large_object_mb)
                counts["large"] = put_large_object(client, bucket, work,
                                                   args.large_object_mb << 20)
            runs = {}
            for round_number in range(args.rounds):
                for number, mode in enumerate(MODES):
                    if mode not in modes:
                        continue
                    run = measure(number, round_number, mode, counts, work, s3_env,
                                  client, bucket, dict(args.set), args.profile)
                    runs.setdefault(mode[0], []).append(run)
                    say("measured %s" % json.dumps(run))
            results = [median_run(runs[mode[0]]) for mode in modes]
    finally:
        server.terminate()
        server.wait()
    figures, memory = ratios(results), memory_figures(results)
    if args.json:
        print(json.dumps({"nxlog": BINARY, "results": results, "ratios": figures,
                          "memory": memory}))
    elif args.markdown:
        print_markdown(results, figures, memory)
    else:
        print_table(results, figures, memory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
