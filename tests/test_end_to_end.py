"""conf/s3-write.conf then conf/s3-read.conf, run by `python -m nxlog_stub` in processes of
their own, over HTTP: against moto server, and against Ceph's radosgw (a production S3)."""

import collections
import itertools
import os
import re
import subprocess
import sys
import time

import pytest

from helpers import ROOT, drain, key_second, run_conf
from nxlog_stub import api

_bucket_numbers = itertools.count(1)
SERVERS = ["moto_server", pytest.param("ceph", marks=pytest.mark.ceph)]


@pytest.fixture(params=SERVERS)
def endpoint(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def bucket(endpoint):
    return endpoint.new_bucket("nxlog-e2e-%d-%d" % (int(time.time()), next(_bucket_numbers)))


def keys_in(endpoint, bucket):
    pages = endpoint.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", ())]


def spooled(tmp_path):
    spool = tmp_path / "s3_write.spool"
    return [name for name in os.listdir(spool) if not name.startswith(".")]


def write_until_uploaded(endpoint, tmp_path, settings, count, legacy, python):
    """Runs the writer's conf, then starts it again (as NXLog restarted) until its spool is
    empty: a writer that stops with events still in its spool uploads them at its next start."""
    written = 0
    for _ in range(10):
        wrote = run_conf("s3-write.conf", endpoint,
                         {"SCRIPTDIR": ROOT, "LOGFILE": tmp_path / "app.log"},
                         settings, cwd=tmp_path, legacy=legacy, python=python)
        assert wrote.returncode == 0, wrote.stdout + wrote.stderr
        written += int(re.search(r"(\d+) events written, 0 dropped", wrote.stdout).group(1))
        if not spooled(tmp_path):
            assert written == count
            return
    raise AssertionError("still in the spool after 10 runs: %s" % spooled(tmp_path))


def ship_and_read_back(endpoint, bucket, tmp_path, lines, legacy=False, python=sys.executable):
    (tmp_path / "app.log").write_text("".join(line + "\n" for line in lines))
    settings = {"BUCKET": bucket, "SERVER": "web01", "POLL_INTERVAL": 0.2,
                "CHECKPOINT": tmp_path / "reader.checkpoint"}
    write_until_uploaded(endpoint, tmp_path, settings, len(lines), legacy, python)
    read = run_conf("s3-read.conf", endpoint,
                    {"SCRIPTDIR": ROOT, "OUTFILE": tmp_path / "out.log"},
                    settings, cwd=tmp_path, legacy=legacy, python=python)
    assert read.returncode == 0, read.stdout + read.stderr
    return (tmp_path / "out.log").read_text().splitlines()


def test_every_line_comes_back_once_and_in_order(endpoint, bucket, tmp_path):
    lines = ["%03d GET /index.html 200 caf\u00e9" % n for n in range(60)]
    assert ship_and_read_back(endpoint, bucket, tmp_path, lines) == lines
    per_second = collections.Counter(map(key_second, keys_in(endpoint, bucket)))
    assert max(per_second.values()) > 10  # counters .10 and up were ordered as numbers


def test_the_older_api_generation_moves_the_same_lines(moto_server, tmp_path):
    bucket = moto_server.new_bucket("nxlog-e2e-legacy-%d" % next(_bucket_numbers))
    lines = ["legacy %d" % n for n in range(15)]
    assert ship_and_read_back(moto_server, bucket, tmp_path, lines, legacy=True) == lines


def test_the_scripts_run_on_the_oldest_python_nxlog_may_embed(moto_server, tmp_path):
    python = os.environ.get("OLDEST_PYTHON")
    if not python:
        pytest.skip("no Python 3.8 with boto3 here: `make test` makes one in .venv38 where "
                    "python3.8 (or pyenv's 3.8) exists, and passes it as OLDEST_PYTHON")
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "(3, 8)"
    bucket = moto_server.new_bucket("nxlog-e2e-py38-%d" % next(_bucket_numbers))
    lines = ["python 3.8 line %d" % n for n in range(15)]
    assert ship_and_read_back(moto_server, bucket, tmp_path, lines, python=python) == lines


@pytest.mark.parametrize("server", SERVERS)
def test_a_large_batch_streamed_by_the_transfer_manager_overwrites_nothing(
        request, server, settings, build, monkeypatch):
    endpoint = request.getfixturevalue(server)
    bucket = endpoint.new_bucket("nxlog-large-%d" % next(_bucket_numbers))
    for name, value in endpoint.env.items():
        monkeypatch.setenv(name, value)
    settings(BUCKET=bucket, BATCH_EVENTS=1000, BATCH_BYTES=6 * 1024 * 1024, COMPRESSION="none",
             KEY_TIME="local")
    key = "web01/2026-03-01/10.00.07.1.jsonl"  # the key of the writer's batch
    endpoint.client().put_object(Bucket=bucket, Key=key, Body=b"someone else's")
    # this 6 MiB batch streams from a temporary file:
    writer = build("s3_write", in_memory_upload=1024 * 1024)
    big = "z" * (100 * 1024)
    for n in range(62):
        event = api.new_event(api.output_module(), {"raw_event": "%02d %s" % (n, big),
                                                    "EventReceivedTime": "2026-03-01 10:00:07"})
        assert api.call_write_data(writer.write_data, event), api.logged("ERROR")
    drain(writer, seconds=60)
    client = endpoint.client()
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"someone else's"
    second = client.get_object(Bucket=bucket, Key="web01/2026-03-01/10.00.07.2.jsonl")
    assert second["Metadata"]["nxlog-s3-events"] == "62"


@pytest.mark.parametrize("server", SERVERS)
def test_a_restart_in_the_same_second_overwrites_nothing(request, server, settings, load,
                                                         monkeypatch):
    endpoint = request.getfixturevalue(server)
    bucket = endpoint.new_bucket("nxlog-restart-%d" % next(_bucket_numbers))
    for name, value in endpoint.env.items():
        monkeypatch.setenv(name, value)
    settings(BUCKET=bucket)
    received = "2026-03-01 10:00:07"
    for run in ("first run", "second run"):  # each load is a new instance: counters start empty
        writer = load("s3_write")
        for n in range(3):
            event = api.new_event(api.output_module(), {"raw_event": "%s %d" % (run, n),
                                                        "EventReceivedTime": received})
            assert api.call_write_data(writer.write_data, event), api.logged("ERROR")
        drain(writer)
        writer.stop()
    client = endpoint.client()
    stored = {key: client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
              for key in keys_in(endpoint, bucket)}
    assert len(stored) == 6
    assert sorted(stored.values()) == sorted("%s %d" % (run, n) for run in ("first run",
                                             "second run") for n in range(3))


def test_the_stubs_summary_says_what_the_writer_left_in_its_spool_and_why(moto_server,
                                                                          tmp_path):
    bucket = moto_server.new_bucket("nxlog-e2e-left-%d" % next(_bucket_numbers))
    (tmp_path / "app.log").write_text("".join("line %d\n" % n for n in range(50)))
    wrote = run_conf("s3-write.conf", moto_server,
                     {"SCRIPTDIR": ROOT, "LOGFILE": tmp_path / "app.log"},
                     {"BUCKET": bucket, "SERVER": "web01", "BATCH_EVENTS": 1000}, cwd=tmp_path)
    assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    assert "  at the stop: INFO s3_write: stops with 50 events in the spool %s, stored after " \
        "the next start: 50 in the batch being filled, which closes at 1000 events, 8388608 " \
        "bytes or 60 s after its first event" % (tmp_path / "s3_write.spool") \
        in wrote.stdout.splitlines()
