"""The writer under the worst: SIGKILL at random points while it ships, and an S3 endpoint
that goes away and comes back. Over HTTP, against moto server."""

import collections
import gzip
import json
import os
import random
import subprocess
import sys
import time

import boto3
import pytest
from faults import FaultProxy
from moto.server import ThreadedMotoServer

from conftest import ROOT, drain, free_port, wait_for
from nxlog_stub import api

WRITER = os.path.join(ROOT, "tests", "programs", "writer_process.py")
EVENTS = 100000
KILLS = 20


def events_in(client, bucket):
    """{event number: times stored} and the batch id of every object in BUCKET."""
    counts, batch_ids = collections.Counter(), []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            stored = client.get_object(Bucket=bucket, Key=item["Key"])
            batch_ids.append(stored["Metadata"]["nxlog-s3-batch"])
            for line in gzip.decompress(stored["Body"].read()).splitlines():
                counts[int(json.loads(line)["raw_event"].split()[1])] += 1
    return counts, batch_ids


def last_returned(progress):
    """The last event whose write_data returned, by the progress file (-1: none)."""
    if not os.path.exists(progress):
        return -1
    with open(progress, "rb") as handle:
        lines = handle.read().split(b"\n")
    complete = [line for line in lines[:-1] if line]  # a torn last line was not recorded
    return int(complete[-1]) if complete else -1


def start_writer(start, progress, env):
    process = subprocess.Popen([sys.executable, WRITER, str(start), str(EVENTS), progress],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "ready", process.stderr.read()
    return process


@pytest.mark.http
def test_sigkill_at_random_points_loses_nothing_and_stores_no_batch_twice(moto_server,
                                                                          tmp_path):
    bucket = moto_server.new_bucket("nxlog-kill-%d" % int(time.time()))
    env = dict(os.environ, **moto_server.env)
    env.update(NXLOG_S3_BUCKET=bucket, NXLOG_S3_SERVER="web01", NXLOG_S3_BATCH_EVENTS="2000",
               NXLOG_S3_BATCH_AGE="0.3", NXLOG_S3_SPOOL_DIR=str(tmp_path / "spool"))
    progress = str(tmp_path / "progress")
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    in_flight = set()  # events whose write_data had not returned at a kill: may be stored twice
    for _ in range(KILLS):
        start = last_returned(progress) + 1
        process = start_writer(start, progress, env)
        time.sleep(chance.uniform(0.0, 0.25))
        process.kill()
        process.wait()
        in_flight.add(last_returned(progress) + 1)
    process = start_writer(last_returned(progress) + 1, progress, env)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0 and out.strip() == "drained", err

    counts, batch_ids = events_in(moto_server.client(), bucket)
    lost = set(range(EVENTS)) - set(counts)
    twice = {number for number, times in counts.items() if times > 1}
    assert not lost, "seed %d: %d events lost, e.g. %s" % (seed, len(lost), sorted(lost)[:5])
    assert twice <= in_flight, "seed %d: stored twice: %s" % (seed, sorted(twice - in_flight))
    assert len(batch_ids) == len(set(batch_ids)), "seed %d: a batch was stored twice" % seed
    assert last_returned(progress) == EVENTS - 1


@pytest.mark.http
def test_uploads_resume_by_themselves_after_the_endpoint_comes_back(settings, load,
                                                                     monkeypatch):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:%d" % port)
    settings(BATCH_EVENTS=50, BATCH_AGE=0.2, RETRY_ATTEMPTS=1, CONNECT_TIMEOUT=0.5)
    client = boto3.client("s3")
    client.create_bucket(Bucket="nxlog-archive")
    writer = load("s3_write")

    def ship(first, last):
        for number in range(first, last):
            event = api.new_event(api.output_module(), {"raw_event": "event %06d" % number})
            assert api.call_write_data(writer.write_data, event)
    try:
        ship(0, 500)
        drain(writer)
        server.stop()  # the endpoint goes away
        ship(500, 1000)
        wait_for(lambda: api.logged("WARNING"), what="a warning about the endpoint")
        assert writer._spool.pending() == 500
        time.sleep(2)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # and comes back, with what it stored before
        drain(writer, seconds=60)
        counts, batch_ids = events_in(client, "nxlog-archive")
        assert counts == collections.Counter(range(1000))
        assert len(batch_ids) == len(set(batch_ids))
        assert "Could not connect to the endpoint URL" in api.logged("WARNING")[0]
    finally:
        writer.stop()
        server.stop()


READER = os.path.join(ROOT, "tests", "programs", "reader_process.py")
EVENTS_PER_OBJECT = 1000


def fill_bucket(client, bucket):
    """EVENTS events in batches as s3_write.py stores them, ten objects a second."""
    for number in range(EVENTS // EVENTS_PER_OBJECT):
        first = number * EVENTS_PER_OBJECT
        body = b"".join(json.dumps({"raw_event": "event %06d" % event}).encode() + b"\n"
                        for event in range(first, first + EVENTS_PER_OBJECT))
        client.put_object(Bucket=bucket, Key="web01/2026-03-01/10.%02d.%02d.%d" % (
            number // 600, number // 10 % 60, number % 10 + 1), Body=gzip.compress(body),
            Metadata={"nxlog-s3-format": "jsonl", "nxlog-s3-compression": "gzip"})


@pytest.mark.http
def test_sigkill_of_the_reader_loses_nothing_and_repeats_only_the_object_in_progress(
        moto_server, tmp_path):
    bucket = moto_server.new_bucket("nxlog-read-kill-%d" % int(time.time()))
    fill_bucket(moto_server.client(), bucket)
    env = dict(os.environ, **moto_server.env)
    env.update(NXLOG_S3_BUCKET=bucket, NXLOG_S3_SERVER="web01", NXLOG_S3_POLL_INTERVAL="5",
               NXLOG_S3_CHECKPOINT=str(tmp_path / "checkpoint"))
    output = str(tmp_path / "posted")
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    for _ in range(KILLS):
        before = os.path.getsize(output) if os.path.exists(output) else 0
        process = subprocess.Popen([sys.executable, READER, output], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready", process.stderr.read()
        wait_for(lambda before=before: os.path.exists(output) and os.path.getsize(output) > before,
                 what="the reader posting events")  # kill while it reads, not while it starts
        time.sleep(chance.uniform(0.0, 0.1))
        process.kill()
        process.wait()
    final = subprocess.run([sys.executable, READER, output], env=env, capture_output=True,
                           text=True, timeout=300)
    assert final.returncode == 0 and "caught up" in final.stdout, final.stderr

    with open(output) as handle:
        counts = collections.Counter(int(line.split()[1]) for line in handle if line.strip())
    lost = set(range(EVENTS)) - set(counts)
    repeated_objects = {number // EVENTS_PER_OBJECT for number, times in counts.items()
                        if times > 1}
    assert not lost, "seed %d: %d events lost, e.g. %s" % (seed, len(lost), sorted(lost)[:5])
    assert len(repeated_objects) <= KILLS, "seed %d: events of %d objects posted twice" % (
        seed, len(repeated_objects))


@pytest.mark.http
@pytest.mark.parametrize("seed", [7])
def test_a_fifth_of_requests_failing_loses_nothing_and_stores_nothing_twice(
        moto_server, settings, load, monkeypatch, seed):
    """503 SlowDown, 500 and connection resets on 20% of the requests, writing and reading."""
    bucket = moto_server.new_bucket("nxlog-faults-%d" % int(time.time()))
    upstream = moto_server.url.rsplit(":", 1)
    with FaultProxy(("127.0.0.1", int(upstream[1])), faults=0.2, seed=seed) as proxy:
        for name, value in moto_server.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        settings(BUCKET=bucket, BATCH_EVENTS=200, BATCH_AGE=0.2, RETRY_ATTEMPTS=3,
                 POLL_INTERVAL=0.05, MAX_ATTEMPTS=100)
        writer = load("s3_write")
        for number in range(5000):
            event = api.new_event(api.output_module(), {"raw_event": "event %06d" % number})
            assert api.call_write_data(writer.write_data, event)
        drain(writer, seconds=120)
        reader, posted = load("s3_read"), []
        module = api.input_module()
        module.deliver = lambda event: posted.append(int(event.get_field("raw_event").split()[1]))
        deadline = time.monotonic() + 120
        while len(posted) < 5000 and time.monotonic() < deadline:
            delay, _ = api.call_read_data(reader.read_data, module)
            time.sleep(delay)
    counts, batch_ids = events_in(moto_server.client(), bucket)
    assert proxy.counts["503"] and proxy.counts["500"] and proxy.counts["reset"], proxy.counts
    assert counts == collections.Counter(range(5000)), "seed %d: stored %d events" % (
        seed, sum(counts.values()))
    assert len(batch_ids) == len(set(batch_ids)) == 25
    assert sorted(posted) == list(range(5000)), "seed %d: read %d events" % (seed, len(posted))
