"""COORDINATION=s3 with readers in processes of their own, over HTTP on moto server: three
readers share twelve servers while objects keep landing; one is SIGKILLed while it posts,
one is cut off from S3 for twice LEASE_SECONDS and comes back, one is restarted. Every event
must be posted, in order per server, duplicates only from objects in progress at a failure,
and never one server by two readers at once (tests/programs/shared_reader.py says how the
timestamps show that)."""

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
from faults import FaultProxy

from helpers import JSON_LINES, ROOT, NotificationQueue, batch, put

READER = os.path.join(ROOT, "tests", "programs", "shared_reader.py")
SERVERS = ["srv%02d" % number for number in range(12)]
EVENTS = 1000  # an object's: a reader is mostly inside one when it is killed
LEASE = 6


def object_events(server, number):
    return ["%s %d %d" % (server, number, place) for place in range(EVENTS)]


class Archive(object):
    """The bucket's objects: NUMBER batches per server, more added by a thread (grow)."""

    def __init__(self, client, bucket):
        self.client, self.bucket, self.objects = client, bucket, 0

    def add(self):
        for server in SERVERS:
            put(self.client, "%s/2026-03-01/10.%02d.00.1.jsonl.gz" % (server, self.objects),
                batch(*object_events(server, self.objects)), JSON_LINES, bucket=self.bucket)
        self.objects += 1

    def grow(self, times, every):
        def run():
            for _ in range(times):
                time.sleep(every)
                self.add()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def expected(self, server):
        return [event for number in range(self.objects) for event in object_events(server,
                                                                                  number)]


class ReaderProcess(object):
    """shared_reader.py as READER_NAME NAME, through its own fault proxy to S3."""

    def __init__(self, name, endpoint, bucket, folder):
        upstream = urllib.parse.urlparse(endpoint.url)
        self.proxy = FaultProxy((upstream.hostname, upstream.port)).__enter__()
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("NXLOG_S3_", "AWS_"))}
        self.env.update(endpoint.env, AWS_ENDPOINT_URL=self.proxy.url, NXLOG_S3_BUCKET=bucket,
                        NXLOG_S3_SERVER="*", NXLOG_S3_COORDINATION="s3",
                        NXLOG_S3_READER_NAME=name, NXLOG_S3_LEASE_SECONDS=str(LEASE),
                        NXLOG_S3_POLL_INTERVAL="1", NXLOG_S3_CONNECT_TIMEOUT="1",
                        NXLOG_S3_READ_TIMEOUT="2", NXLOG_S3_RETRY_ATTEMPTS="2")
        self.output = os.path.join(str(folder), "%s.jsonl" % name)
        self.log = open(os.path.join(str(folder), "%s.log" % name), "ab")
        self.folder, self.process = str(folder), None

    def start(self):
        self.process = subprocess.Popen([sys.executable, READER, self.output], env=self.env,
                                        cwd=self.folder, stdout=subprocess.PIPE,
                                        stderr=self.log)
        assert self.process.stdout.readline().strip() == b"ready"
        return self

    def posted(self):
        try:
            with open(self.output) as handle:
                return sum(1 for line in handle if '"event": null' not in line)
        except FileNotFoundError:
            return 0

    def place(self):
        """Where in its object the last event this reader posted lies (-1 for none)."""
        try:
            with open(self.output, "rb") as handle:
                handle.seek(max(0, os.path.getsize(self.output) - 400))
                lines = [json.loads(line) for line in handle.read().splitlines()[1:]]
        except FileNotFoundError:
            return -1
        events = [line["event"] for line in lines if line["event"]]
        return int(events[-1].split(" ")[2]) if events else -1

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)
        self.process.stdout.close()

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.stop(signal.SIGKILL)
        self.proxy.__exit__(None, None, None)
        self.log.close()


def wait_until(condition, seconds, what, every=0.1):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(every)


def records(folder, names):
    """Every record the readers appended, sorted by time."""
    lines = []
    for name in names:
        with open(os.path.join(str(folder), "%s.jsonl" % name)) as handle:
            lines += [json.loads(line) for line in handle]
    return sorted(lines, key=lambda record: record["time"])


@pytest.mark.parametrize("notified", [False, True], ids=["polling", "with NOTIFY_QUEUE"])
def test_three_readers_fail_over_with_nothing_lost_order_kept_and_no_server_read_twice_at_once(
        moto_server, tmp_path, notified):
    bucket = moto_server.new_bucket("nxlog-failover")
    archive = Archive(moto_server.client(), bucket)
    for _ in range(3):
        archive.add()
    names = ["r1", "r2", "r3"]
    readers = {name: ReaderProcess(name, moto_server, bucket, tmp_path) for name in names}
    if notified:  # hints from the queue, and a full poll every 30 s only
        queue = NotificationQueue(moto_server, bucket).url
        for reader in readers.values():
            reader.env.update(NXLOG_S3_NOTIFY_QUEUE=queue, NXLOG_S3_FULL_POLL_INTERVAL="30")
    try:
        for reader in readers.values():
            reader.start()
        growing = archive.grow(times=8, every=2)
        wait_until(lambda: all(reader.posted() for reader in readers.values()), 60,
                   "the readers did not share the servers in 60 s")
        wait_until(lambda: 0 < readers["r1"].place() < EVENTS // 2, 60,
                   "r1 never seen inside an object", every=0.002)
        killed_at = time.time()
        readers["r1"].stop(signal.SIGKILL)  # inside an object: it is in progress
        readers["r2"].proxy.outage(2 * LEASE)
        time.sleep(2)
        readers["r3"].stop()
        readers["r3"].start()
        growing.join()
        total = archive.objects * EVENTS * len(SERVERS)
        wait_until(lambda: len({json.dumps(record["event"]) for record in records(
            tmp_path, names) if record["event"]}) >= total, 120,
            "not every event was posted in 120 s", every=1)
    finally:
        for reader in readers.values():
            reader.close()
    last = [record for record in records(tmp_path, ["r1"]) if record["event"]][-1]
    assert int(last["event"].split(" ")[2]) < EVENTS - 1, "r1 was killed between objects"
    posts = collections.defaultdict(list)
    for record in records(tmp_path, names):
        posts[record["server"]].append(record)
    for server in SERVERS:
        check_server(server, posts[server], archive.expected(server))
    failover = max(taken_over_after(posts[server], killed_at) for server in SERVERS
                   if holder_at(posts[server], killed_at).startswith("r1@"))
    print("r1's servers taken over %.1f s after it was killed (LEASE_SECONDS=%d, "
          "POLL_INTERVAL=1)" % (failover, LEASE))
    assert failover <= LEASE + 1 + 3, "r1's servers were taken over %.1f s after it was " \
        "killed: more than LEASE_SECONDS + POLL_INTERVAL + 3 s" % failover


def holder_at(records, moment):
    return [record["reader"] for record in records if record["event"] is None and
            record["time"] <= moment][-1]


def taken_over_after(records, moment):
    """Seconds from MOMENT to the first take of the server after it."""
    return min(record["time"] for record in records if record["event"] is None and
               record["time"] > moment) - moment


def check_server(server, records, expected):
    """What one server's records must show (see the module's docstring)."""
    leases = [record["lease"] for record in records]
    assert leases == sorted(leases), "%s was posted by a reader after another took it " \
        "over: %s" % (server, [(record["reader"], record["lease"]) for record in records
                               if record["event"] is None])
    events = [record["event"] for record in records if record["event"] is not None]
    first_seen = list(collections.OrderedDict.fromkeys(events))
    assert first_seen == expected, "%s: events lost or out of order" % server
    again = collections.Counter(events) - collections.Counter(expected)
    objects_again = {int(event.split(" ")[1]) for event in again}
    handovers = sum(1 for before, after in zip(records, records[1:])
                    if after["event"] is None and before["reader"] != after["reader"])
    assert len(objects_again) <= handovers, "%s: %s posted again, more than the objects in " \
        "progress at %d handovers" % (server, sorted(objects_again), handovers)
