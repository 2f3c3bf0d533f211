"""What survives: each scenario runs the writer and the reader through one kind of trouble
with 100,000 events (a million with --soak), over HTTP, against moto server behind a
fault-injecting proxy (tests/faults.py), in a bucket with versioning on so that an
overwritten object would show. Each reports, per side, events in and out, lost, duplicated,
overwritten objects and the errors it logged; `make reliability` turns the reports into
docs/RELIABILITY.md. The figures are reported before they are asserted, so that a failing
scenario still shows what it found.
"""

import collections
import errno
import gzip
import itertools
import json
import os
import random
import subprocess
import sys
import time
import uuid

import pytest
from faults import FAULTS, FaultProxy

from helpers import JSON_LINES, ROOT, FastClock, drain, instance_of, wait_for
from nxlog_stub import api

pytestmark = [pytest.mark.http, pytest.mark.reliability]

EVENTS_PER_OBJECT = 1000
SEED = 7
OUTAGE = 60  # seconds the endpoint is down in the outage scenario
WRITER = os.path.join(ROOT, "tests", "programs", "writer_process.py")
READER = os.path.join(ROOT, "tests", "programs", "reader_process.py")


@pytest.fixture
def events(soak):
    return 1000000 if soak else 100000


@pytest.fixture
def kills(soak):
    return 100 if soak else 20


class Rig(object):
    """A versioned bucket on moto server, a FaultProxy in front of it, and the settings that
    point the scripts (loaded here or in processes of their own) at the proxy."""

    def __init__(self, moto_server, faults, seed):
        self.client = moto_server.client()  # the tests' own view: straight to S3, no faults
        self.bucket = moto_server.new_bucket("nxlog-reliability-%s" % uuid.uuid4().hex[:12])
        self.client.put_bucket_versioning(Bucket=self.bucket,
                                          VersioningConfiguration={"Status": "Enabled"})
        port = int(moto_server.url.rsplit(":", 1)[1])
        self.proxy = FaultProxy(("127.0.0.1", port), faults, seed, stall=2.0).__enter__()
        self.env = dict(moto_server.env, AWS_ENDPOINT_URL=self.proxy.url)
        self.settings = {"BUCKET": self.bucket, "SERVER": "web01",
                         "BATCH_EVENTS": EVENTS_PER_OBJECT, "BATCH_AGE": 0.5,
                         "RETRY_ATTEMPTS": 3, "CONNECT_TIMEOUT": 1, "READ_TIMEOUT": 1,
                         "POLL_INTERVAL": 0.2, "MAX_ATTEMPTS": 1000}

    def process_env(self, **settings):
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("NXLOG_S3_", "AWS_"))}
        env.update(self.env)
        env.update({"NXLOG_S3_%s" % name: str(value)
                    for name, value in dict(self.settings, **settings).items()})
        return env

    def stored(self, others=()):
        """{event number: times stored}, and how many keys hold more than one version; the
        keys OTHERS (not the writer's) left out."""
        counts = collections.Counter()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", ()):
                if item["Key"] in others:
                    continue
                body = self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"]
                for line in gzip.decompress(body.read()).splitlines():
                    counts[number_of(json.loads(line)["raw_event"])] += 1
        versions = collections.Counter(
            version["Key"] for page in self.client.get_paginator("list_object_versions")
            .paginate(Bucket=self.bucket) for version in page.get("Versions", ()))
        return counts, sum(1 for count in versions.values() if count > 1)

    def fill(self, events, objects=None):
        """EVENTS events in objects as s3_write.py stores them, ten objects a second; only
        the objects numbered in OBJECTS, if given."""
        for number in range(events // EVENTS_PER_OBJECT):
            if objects is not None and number not in objects:
                continue
            first = number * EVENTS_PER_OBJECT
            body = b"".join(json.dumps({"raw_event": text_of(event)}).encode() + b"\n"
                            for event in range(first, first + EVENTS_PER_OBJECT))
            self.client.put_object(
                Bucket=self.bucket, Key="web01/2026-03-01/%02d.%02d.%02d.%d" % (
                    number // 36000, number // 600 % 60, number // 10 % 60, number % 10 + 1),
                Body=gzip.compress(body),
                Metadata=JSON_LINES)

    def close(self):
        self.proxy.__exit__()


@pytest.fixture
def rig(moto_server, monkeypatch, settings):
    """rig(faults=0.2): a Rig, with the scripts loaded in this process pointed at it."""
    made = []

    def make(faults=0.0, seed=SEED):
        made.append(Rig(moto_server, faults, seed))
        for name, value in made[-1].env.items():
            monkeypatch.setenv(name, value)
        settings(**made[-1].settings)
        return made[-1]
    yield make
    for each in made:
        each.close()


def text_of(number):
    return "event %07d %s" % (number, "x" * 180)  # about 200 bytes, as the benchmarks


def number_of(raw_event):
    return int(raw_event.split()[1])


def figures(expected, counts, overwritten, errors):
    """A side's report: EXPECTED event numbers in, COUNTS {number: times} out."""
    return {"events_in": len(expected), "events_out": sum(counts.values()),
            "lost": len(set(expected) - set(counts)),
            "duplicated": sum(times - 1 for times in counts.values() if times > 1),
            "overwritten": overwritten, "errors_reported": errors}


def report_both(report, scenario, events, counts, overwritten, numbers_posted):
    """The writer's and the reader's rows of a scenario in which EVENTS events were written
    (COUNTS: {number: times stored}) and NUMBERS_POSTED read back."""
    report(scenario, "writer", **figures(range(events), counts, overwritten,
                                         problems_logged("s3_write")))
    report(scenario, "reader", **figures(set(counts), collections.Counter(numbers_posted), 0,
                                         problems_logged("s3_read")))


def problems_logged(script):
    """Warnings and errors SCRIPT logged (each lasting problem once a minute at most)."""
    return sum(1 for message in api.logged("WARNING") + api.logged("ERROR")
               if message.startswith(script + ":"))


def ship(writer, numbers, received=None):
    """write_data for each event number, as NXLog calls it; every call must take its event."""
    module = api.output_module()
    for number in numbers:
        fields = {"raw_event": text_of(number)}
        if received is not None:
            fields["EventReceivedTime"] = received()
        assert api.call_write_data(writer.write_data, api.new_event(module, fields)), \
            api.logged("ERROR")[-1:]


class Posted(object):
    """The event numbers a reader loaded here posts, in order, as NXLog takes them."""

    def __init__(self, reader):
        self.reader, self.numbers = reader, []
        self.module = api.input_module()
        self.module.deliver = lambda event: self.numbers.append(
            number_of(event.get_field("raw_event")))

    def poll(self):
        delay, _ = api.call_read_data(self.reader.read_data, self.module)
        assert delay is not None, "the input stopped: %s" % api.logged("ERROR")
        return delay

    def until(self, count, seconds, stop=None):
        """Polls as NXLog would until COUNT events are posted and the reader caught up (or
        STOP is set: the test ended)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            delay = self.poll()
            caught_up = delay == instance_of(self.reader).settings.POLL_INTERVAL
            if len(self.numbers) >= count and caught_up:
                return
            time.sleep(delay)
        raise AssertionError("posted %d of %d events in %s s; logged: %s"
                             % (len(self.numbers), count, seconds, api.logged("ERROR")[-3:]))


def write_then_read(rig, load, report, scenario, events):
    """The writer ships EVENTS and drains, then a reader reads them all; both reported."""
    writer = load("s3_write")
    ship(writer, range(events))
    drain(writer, seconds=600)
    counts, overwritten = rig.stored()
    report(scenario, "writer", **figures(range(events), counts, overwritten,
                                         problems_logged("s3_write")))
    posted = Posted(load("s3_read"))
    posted.until(len(counts), seconds=600)
    report(scenario, "reader", **figures(set(counts), collections.Counter(posted.numbers), 0,
                                         problems_logged("s3_read")))
    assert counts == collections.Counter(range(events)) and overwritten == 0
    assert sorted(posted.numbers) == list(range(events))


# ---- Scenarios ----

def test_a_fifth_of_requests_failing_loses_nothing_and_stores_nothing_twice(rig, load, report,
                                                                            events):
    setup = rig(faults=0.2)
    write_then_read(setup, load, report, "20% of requests fail: 503, 500, reset, stall past "
                    "the timeout", events)
    assert all(setup.proxy.counts[kind] for kind in FAULTS), setup.proxy.counts


def test_the_endpoint_down_for_a_minute_midway_loses_nothing(rig, build, background, report,
                                                            settings, events):
    """The writer ships and the reader reads at the same time; S3 goes away for OUTAGE
    seconds in the middle and comes back: both resume by themselves. The minute passes on
    the scripts' clock, twenty times as fast as the real one, and so do their back-offs;
    botocore's own retries sleep in real time, so the scripts' back-off alone is used."""
    setup = rig()
    settings(RETRY_ATTEMPTS=1)
    clock = FastClock(rate=20)
    writer = build("s3_write", clock=clock)
    posted = Posted(build("s3_read", clock=clock))
    reading = background(lambda stop: posted.until(events, 600, stop))
    ship(writer, range(events // 2))
    down_at = clock.monotonic()
    setup.proxy.outage(OUTAGE, clock)
    ship(writer, range(events // 2, events))
    assert setup.proxy.down.is_set(), "the outage ended before the events were spooled"
    wait_for(lambda: not setup.proxy.down.is_set(), seconds=OUTAGE, what="the outage")
    assert clock.monotonic() - down_at >= OUTAGE
    drain(writer, seconds=600)
    reading.join()
    counts, overwritten = setup.stored()
    scenario = "the endpoint down for %d s midway, writing and reading" % OUTAGE
    report_both(report, scenario, events, counts, overwritten, posted.numbers)
    assert setup.proxy.counts["refused"], "no request met the outage"
    assert counts == collections.Counter(range(events)) and overwritten == 0
    assert sorted(posted.numbers) == list(range(events))


# -- SIGKILL, with a fifth of the requests failing --

def last_returned(progress):
    """The last event whose write_data returned, by the progress file (-1: none)."""
    if not os.path.exists(progress):
        return -1
    with open(progress, "rb") as handle:
        lines = handle.read().split(b"\n")
    complete = [line for line in lines[:-1] if line]  # a torn last line was not recorded
    return int(complete[-1]) if complete else -1


def problems_in(stderr):
    return sum(1 for line in stderr.splitlines() if line.startswith(("WARNING", "ERROR")))


def start_writer(start, events, progress, env):
    """The writer process, once it said "ready". Its output is read unbuffered: a buffered
    readline could take "drained" too, out of what communicate() later returns."""
    process = subprocess.Popen([sys.executable, WRITER, str(start), str(events), progress],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               bufsize=0)
    assert process.stdout.readline().strip() == b"ready", process.communicate()[1]
    return process


def finished(process, timeout=None):
    """(stdout, stderr) of PROCESS once it ends, as text."""
    out, err = process.communicate(timeout=timeout)
    return out.decode(), err.decode()


def test_sigkill_of_the_writer_at_random_points_with_faults_loses_nothing(
        rig, report, tmp_path, events, kills):
    setup = rig(faults=0.2)
    env = setup.process_env(SPOOL_DIR=tmp_path / "spool")
    progress = str(tmp_path / "progress")
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    in_flight, logged = set(), 0  # in flight at a kill: its write_data had not returned
    for _ in range(kills):
        process = start_writer(last_returned(progress) + 1, events, progress, env)
        time.sleep(chance.uniform(0.0, 0.5))
        process.kill()
        logged += problems_in(finished(process)[1])
        in_flight.add(last_returned(progress) + 1)
    process = start_writer(last_returned(progress) + 1, events, progress, env)
    out, err = finished(process, timeout=900)
    logged += problems_in(err)
    counts, overwritten = setup.stored()
    report("SIGKILL at %d random points, 20%% of requests failing" % kills, "writer",
           seed=seed, **figures(range(events), counts, overwritten, logged))
    assert process.returncode == 0 and out.strip() == "drained", err
    twice = {number for number, times in counts.items() if times > 1}
    assert set(counts) == set(range(events)), "seed %d: lost %d" % (
        seed, events - len(counts))
    assert twice <= in_flight, "seed %d: stored twice: %s" % (seed, sorted(twice - in_flight))
    assert overwritten == 0


def test_sigkill_of_the_reader_at_random_points_with_faults_loses_nothing(
        rig, report, tmp_path, events, kills):
    """The reader is killed at random points while it reads, and started again. Once it has
    posted 60% of the events, one object in twenty of the first 30% lands late, behind its
    window (LOOKBACK=1): its re-listing (at every catch-up here) must read those."""
    setup = rig(faults=0.2)
    objects = events // EVENTS_PER_OBJECT
    late = set(range(0, objects * 3 // 10, 20))
    setup.fill(events, objects=set(range(objects)) - late)
    env = setup.process_env(CHECKPOINT=tmp_path / "checkpoint", POLL_INTERVAL=5, LOOKBACK=1,
                            LATE_INTERVAL=0)
    output = str(tmp_path / "posted")
    seed = random.randrange(1 << 30)
    chance, logged, landed = random.Random(seed), 0, False

    def posted_bytes():
        return os.path.getsize(output) if os.path.exists(output) else 0
    for _ in range(kills):
        if not landed and posted_bytes() >= 0.6 * events * (len(text_of(0)) + 1):
            setup.fill(events, objects=late)
            landed = True
        before = posted_bytes()
        process = subprocess.Popen([sys.executable, READER, output], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready", process.communicate()[1]
        wait_for(lambda before=before, process=process: posted_bytes() > before or
                 process.poll() is not None, seconds=60,
                 what="the reader posting events")  # not while it starts
        time.sleep(chance.uniform(0.0, 0.2))
        process.kill()
        logged += problems_in(process.communicate()[1])
        if process.returncode == 0:  # it caught up before the kill
            if landed:
                break
            setup.fill(events, objects=late)
            landed = True
    if not landed:
        setup.fill(events, objects=late)
    final = subprocess.run([sys.executable, READER, output], env=env, capture_output=True,
                           text=True, timeout=900)
    logged += problems_in(final.stderr)
    with open(output) as handle:
        counts = collections.Counter(number_of(line) for line in handle if line.strip())
    report("SIGKILL at %d random points, 20%% of requests failing; %d objects landing "
           "late, behind the window" % (kills, len(late)), "reader",
           seed=seed, **figures(range(events), counts, 0, logged))
    assert final.returncode == 0 and "caught up" in final.stdout, final.stderr
    repeated_objects = {number // EVENTS_PER_OBJECT for number, times in counts.items()
                        if times > 1}
    assert set(counts) == set(range(events)), "seed %d: lost %d" % (seed, events - len(counts))
    assert len(repeated_objects) <= kills, "seed %d: events of %d objects posted twice" % (
        seed, len(repeated_objects))


# -- A full disk --

@pytest.fixture
def small_disk(tmp_path):
    """small_disk(bytes): a folder on a file system of its own that holds BYTES (tmpfs).
    Ask for it before `load`, so that it is unmounted after the scripts let go of it."""
    mounted = []

    def mount(size):
        folder = tmp_path / ("disk%d" % len(mounted))
        folder.mkdir(mode=0o700)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % size, "tmpfs",
                           str(folder)], capture_output=True).returncode:
            pytest.skip("cannot mount a small file system here (it takes root)")
        mounted.append(folder)
        return folder
    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)


def fill_up(folder):
    """Writes FOLDER/filler until the disk is full; returns its path."""
    path = os.path.join(folder, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, bytes(4096)):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return path


def test_a_full_spool_disk_makes_write_data_wait_and_loses_nothing(small_disk, rig, load,
                                                                   report, settings, events):
    """The spool's disk holds 1 MiB (about 5,000 events); S3 is away for the first seconds,
    so the disk fills and write_data waits until uploads free it."""
    setup = rig()
    settings(SPOOL_DIR=small_disk(1 << 20))
    writer = load("s3_write")
    setup.proxy.outage(3)
    ship(writer, range(events))
    drain(writer, seconds=600)
    counts, overwritten = setup.stored()
    scenario = "a full disk: the spool's (1 MiB) and the checkpoint's"
    report(scenario, "writer", **figures(range(events), counts, overwritten,
                                         problems_logged("s3_write")))
    full = [message for message in api.logged("WARNING") if "the disk of the spool" in message]
    assert full, "the disk never filled: %s" % api.logged("WARNING")
    assert " is full (" in full[0] and "write_data waits up to 1 s for room" in full[0]
    assert counts == collections.Counter(range(events)) and overwritten == 0


def test_a_full_checkpoint_disk_pauses_reading_and_loses_nothing(small_disk, rig, load, report,
                                                                 settings, events):
    setup = rig()
    setup.fill(events)
    disk = small_disk(64 * 1024)
    settings(CHECKPOINT=disk / "checkpoint")
    posted = Posted(load("s3_read"))
    filler = fill_up(disk)
    for _ in range(5):
        posted.poll()
    assert len(posted.numbers) == EVENTS_PER_OBJECT  # one object, then reading pauses
    os.unlink(filler)
    posted.until(events, seconds=600)
    scenario = "a full disk: the spool's (1 MiB) and the checkpoint's"
    report(scenario, "reader", **figures(range(events), collections.Counter(posted.numbers), 0,
                                         problems_logged("s3_read")))
    assert "reading pauses until it can be written" in api.logged("ERROR")[0]
    assert posted.numbers == list(range(events))


# -- Clock jumps --

class JumpingClock(object):
    """The machine's clock, set back and forth as an operator or NTP might: its time()
    jumps by OFFSET; monotonic time and sleeps are the real ones, as on a real machine."""

    monotonic = staticmethod(time.monotonic)

    def __init__(self):
        self.offset = 0.0

    def time(self):
        return time.time() + self.offset

    @staticmethod
    def sleep(seconds, interrupt=None):
        (interrupt.wait if interrupt is not None else time.sleep)(seconds)

    def received(self):
        """EventReceivedTime as NXLog sets it: local time, to the second."""
        return api.local_time_string(self.time())


def test_clock_jumps_back_and_forth_while_writing_lose_nothing(rig, build, report, events):
    """An hour back, a day forward, then right again: with each jump the writer's batches are
    stored and the reader reads them, with its default LOOKBACK of 300 s."""
    setup = rig()
    clock = JumpingClock()
    writer = build("s3_write", clock=clock)
    posted = Posted(build("s3_read", clock=clock))
    quarter = events // 4
    for part, jump in enumerate((0, -3600, 86400 + 3600, -86400)):
        clock.offset += jump
        ship(writer, range(part * quarter, (part + 1) * quarter), received=clock.received)
        drain(writer, seconds=600)
        posted.until((part + 1) * quarter, seconds=120)
    counts, overwritten = setup.stored()
    scenario = "the clock set back 1 h, forward 1 day, back again, while writing and reading"
    report_both(report, scenario, events, counts, overwritten, posted.numbers)
    assert counts == collections.Counter(range(events)) and overwritten == 0
    assert posted.numbers == list(range(events))


# -- Objects landing late, keys and times that cannot be trusted --

def test_a_second_writer_uploading_its_backlog_hours_late_loses_nothing(rig, load, report,
                                                                         settings, events):
    """Two writers share one SERVER: one ships as events come, the other comes back after an
    outage with events 5 hours old. The reader, caught up with the first, reads the backlog
    through its re-listing, each event once."""
    setup = rig(faults=0.2)
    settings(LOOKBACK=60, LATE_INTERVAL=0)
    half, now = events // 2, time.time()
    settings(SPOOL_DIR="live.spool")
    live = load("s3_write")
    settings(SPOOL_DIR="backlog.spool")
    backlog = load("s3_write")
    posted = Posted(load("s3_read"))
    ship(live, range(half), received=lambda: api.local_time_string(time.time()))
    drain(live, seconds=600)
    posted.until(half, seconds=600)
    ship(backlog, range(half, events), received=lambda: api.local_time_string(now - 5 * 3600))
    drain(backlog, seconds=600)
    posted.until(events, seconds=600)
    counts, overwritten = setup.stored()
    scenario = "a second writer with the same SERVER uploads a backlog 5 h late, 20% failing"
    report_both(report, scenario, events, counts, overwritten, posted.numbers)
    assert counts == collections.Counter(range(events)) and overwritten == 0
    assert collections.Counter(posted.numbers) == collections.Counter(range(events))


HOSTILE_KEYS = {  # how another tool's object is keyed, from its number N and the time NOW
    "impossible": lambda n, now: "web01/2026-02-30/10.00.00.%d" % n,
    "off the scheme": lambda n, now: "web01/0-notes-%d.txt" % n,
    "from 2030": lambda n, now: "web01/2030-01-01/00.00.00.%d" % n,
    "behind the horizon": lambda n, now: "web01/%s.%d" % (time.strftime(
        "%Y-%m-%d/%H.%M.%S", time.gmtime(now - 2 * 86400)), n),
}
ABSURD_TIMES = ("9999-12-31 23:59:59", "not a time", "+10 days")


def test_hostile_keys_and_absurd_event_times_pass_nothing_over_in_silence(
        rig, load, report, settings, events):
    """While the writer ships (one event in a hundred with an absurd EventReceivedTime) and
    the reader reads, another tool drops objects under impossible keys, keys off the scheme,
    keys from 2030 and keys behind the horizon. Every event is read once; every dropped
    object is read once or named in a warning."""
    setup = rig()
    settings(LATE_INTERVAL=0, SWEEP_INTERVAL=0.01)  # every re-listing sweeps the prefix
    writer, posted = load("s3_write"), Posted(load("s3_read"))
    calls = itertools.count()

    def received():
        number = next(calls)
        if number % 100:
            return api.local_time_string(time.time())
        absurd = ABSURD_TIMES[number // 100 % len(ABSURD_TIMES)]
        return api.local_time_string(time.time() + 864000) if absurd == "+10 days" else absurd
    dropped = {}
    for part in range(4):
        ship(writer, range(part * events // 4, (part + 1) * events // 4), received=received)
        drain(writer, seconds=600)
        posted.until(len(posted.numbers) + 1, seconds=600)
        for _, key_of in sorted(HOSTILE_KEYS.items()):
            number = events + len(dropped)
            dropped[number] = key_of(number, time.time())
            setup.client.put_object(Bucket=setup.bucket, Key=dropped[number],
                                    Body=text_of(number).encode())
    drain(writer, seconds=600)
    posted.until(events, seconds=600)
    posted.until(events, seconds=600)  # a sweep after the last objects were dropped
    counts, overwritten = setup.stored(others=set(dropped.values()))
    warned = " ".join(api.logged("WARNING") + api.logged("ERROR"))
    read = collections.Counter(posted.numbers)
    named = {number for number, key in dropped.items()  # and not read
             if repr("s3://%s/%s" % (setup.bucket, key)) in warned and number not in read}
    silent = set(dropped) - set(read) - named
    scenario = ("objects dropped under impossible, off-scheme, 2030 and late keys; 1% of "
                "event times absurd")
    report(scenario, "writer", **figures(range(events), counts, overwritten,
                                         problems_logged("s3_write")))
    report(scenario, "reader", reported=len(named), **figures(
        set(range(events)) | set(dropped), read + collections.Counter(named), 0,
        problems_logged("s3_read")))
    assert counts == collections.Counter(range(events)) and overwritten == 0
    assert {number: times for number, times in read.items() if times > 1} == {}
    assert set(range(events)) <= set(read)
    assert silent == set(), [dropped[number] for number in silent]
