"""METRICS_FILE: each script keeps a Prometheus text-format file up to date for
node_exporter's textfile collector, parsed here by the Prometheus client's own parser."""

import os
import stat

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import BUCKET, FastClock, drain, poll, put, read_all, wait_for
from nxlog_stub import api

SECOND = "web01/2026-03-01/10.00.00"


@pytest.fixture(params=["s3_write", "s3_read"])
def script(request):
    return request.param


def metrics(path, bucket=BUCKET, script=("s3_write", "s3_read")):
    """{(name, server, other labels...): value} of the file PATH, and checks that every
    sample names BUCKET and the SCRIPT that wrote it (one of them)."""
    with open(path) as handle:
        families = list(text_string_to_metric_families(handle.read()))
    samples = {}
    for family in families:
        assert family.documentation and family.type in ("counter", "gauge")
        for sample in family.samples:
            labels = dict(sample.labels)
            assert labels.pop("bucket") == bucket
            assert labels.pop("script") in script
            server = labels.pop("server", None)
            samples[(sample.name, server) + tuple(sorted(labels.items()))] = sample.value
    return samples


@pytest.fixture
def metrics_file(settings, tmp_path):
    os.mkdir(tmp_path / "textfile")
    path = tmp_path / "textfile" / "nxlog_s3.prom"
    settings(METRICS_FILE=path)
    return path


def write_events(writer, count):
    for number in range(count):
        assert api.call_write_data(writer.write_data, api.new_event(api.output_module(), {
            "raw_event": "event %d" % number, "EventReceivedTime": "2026-03-01 10:00:05"}))


def test_the_writer_counts_events_in_and_objects_and_bytes_stored(s3, settings, load,
                                                                  metrics_file):
    writer = load("s3_write")
    write_events(writer, 3)
    drain(writer)
    writer.stop()  # as a test ends it: its last figures are written
    shown = metrics(metrics_file)
    stored = sum(item["Size"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert shown[("nxlog_s3_writer_events_total", "web01")] == 3
    assert shown[("nxlog_s3_writer_stored_objects_total", "web01")] == 3
    assert shown[("nxlog_s3_writer_stored_events_total", "web01")] == 3
    assert shown[("nxlog_s3_writer_stored_bytes_total", "web01")] == stored
    assert shown[("nxlog_s3_writer_spool_events", "web01")] == 0
    assert shown[("nxlog_s3_writer_spool_oldest_event_age_seconds", "web01")] == 0
    assert stat.S_IMODE(os.stat(metrics_file).st_mode) == 0o644  # node_exporter's user reads it
    assert sorted(os.listdir(metrics_file.parent)) == [  # written atomically; and its lock
        ".nxlog_s3.prom.lock", "nxlog_s3.prom"]


def test_the_writer_shows_the_spool_the_age_of_its_oldest_event_and_errors_by_kind(
        settings, load_then_lose_bucket, metrics_file):
    writer = load_then_lose_bucket("s3_write", "gone-bucket")
    write_events(writer, 2)
    wait_for(lambda: writer.instance.uploader.errors["NoSuchBucket"] >= 2, what="two failures")
    writer.stop()
    shown = metrics(metrics_file, "gone-bucket")
    assert shown[("nxlog_s3_writer_upload_errors_total", "web01", ("kind", "NoSuchBucket"))] >= 2
    assert shown[("nxlog_s3_writer_spool_events", "web01")] == 2
    assert shown[("nxlog_s3_writer_spool_batches", "web01")] == 2
    age = shown[("nxlog_s3_writer_spool_oldest_event_age_seconds", "web01")]
    assert age > 86400  # its EventReceivedTime was 2026-03-01
    assert ("nxlog_s3_writer_stored_objects_total", "web01") in shown


def test_the_file_is_rewritten_every_few_seconds_while_the_script_runs(s3, settings, load,
                                                                       build, metrics_file):
    writer = build("s3_write", clock=FastClock(10))  # 5 s pass in half a second
    assert metrics(metrics_file)[("nxlog_s3_writer_events_total", "web01")] == 0  # at start
    write_events(writer, 2)
    wait_for(lambda: metrics(metrics_file)[("nxlog_s3_writer_events_total", "web01")] == 2,
             seconds=5, what="the file rewritten")


def test_the_reader_counts_what_it_read_per_server_and_its_lag(s3, settings, load,
                                                               metrics_file):
    settings(MAX_OBJECTS_PER_CALL=1, MAX_ATTEMPTS=1)
    for counter in (1, 2):
        put(s3, "%s.%d" % (SECOND, counter), "event %d" % counter)
    put(s3, SECOND + ".3", b"{broken", {"nxlog-s3-format": "json"})
    reader = load("s3_read")
    poll(reader)
    reader.instance.metrics.write()
    shown = metrics(metrics_file)
    assert shown[("nxlog_s3_reader_events_total", "web01")] == 1
    assert shown[("nxlog_s3_reader_lag_seconds", "web01")] > 86400  # behind, since 2026-03-01
    assert shown[("nxlog_s3_reader_newest_read_timestamp_seconds", "web01")] == 1772359200
    read_all(reader)
    reader.stop()
    shown = metrics(metrics_file)
    assert shown[("nxlog_s3_reader_events_total", "web01")] == 2
    assert shown[("nxlog_s3_reader_objects_total", "web01")] == 2
    assert shown[("nxlog_s3_reader_bytes_total", "web01")] == len("event 1") * 2
    assert shown[("nxlog_s3_reader_set_aside_objects", "web01")] == 1
    assert shown[("nxlog_s3_reader_lag_seconds", "web01")] == 0  # caught up


def test_the_reader_counts_failed_polls_by_kind(settings, load_then_lose_bucket, metrics_file):
    reader = load_then_lose_bucket("s3_read", "gone-bucket")
    poll(reader)
    reader.stop()
    shown = metrics(metrics_file, "gone-bucket")
    assert shown[("nxlog_s3_reader_errors_total", None, ("kind", "NoSuchBucket"))] == 1


def test_a_metrics_file_whose_folder_does_not_exist_keeps_nxlog_from_starting(
        settings, start_refused, tmp_path, script):
    settings(METRICS_FILE=tmp_path / "no-such-folder" / "s3.prom")
    assert start_refused(script)[-1] == "ERROR %s: cannot write METRICS_FILE=%s: the folder " \
        "%s does not exist, or this process (the user NXLog runs as) may not write there" % (
            script, tmp_path / "no-such-folder" / "s3.prom", tmp_path / "no-such-folder")
