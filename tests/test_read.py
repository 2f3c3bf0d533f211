"""s3_read.py under the stub, against moto's in-process S3."""

import calendar
import gzip
import json
import os
import pickle
import stat
import time

import pytest

from helpers import (
    BUCKET,
    JSON_LINES,
    LockInAnotherProcess,
    batch,
    checkpoint,
    filling_disk,
    poll,
    put,
    read_all,
    restarted,
)
from nxlog_stub import api

SECOND = "web01/2026-03-01/10.00.34"


@pytest.fixture
def reader(s3, settings, load):
    settings(POLL_INTERVAL=5)
    return load("s3_read")


def test_objects_are_read_in_key_order_with_counters_as_numbers(s3, reader):
    for n in (1, 2, 10, 11, 3):
        put(s3, "%s.%d" % (SECOND, n), "e%d" % n)
    put(s3, "web01/2026-03-01/10.00.35.1", "next second")
    put(s3, "web01/2026-03-01/10.00.33.1", "previous second")
    assert read_all(reader) == ["previous second", "e1", "e2", "e3", "e10", "e11", "next second"]


def test_a_second_spanning_two_list_pages_is_still_read_by_counter(s3, settings, load):
    settings(MAXKEYS=3)
    for n in range(1, 13):
        put(s3, "%s.%d" % (SECOND, n), "e%d" % n)
    assert read_all(load("s3_read")) == ["e%d" % n for n in range(1, 13)]


def test_pages_are_listed_with_maxkeys_and_start_after_the_checkpoint(s3, settings, load):
    settings(MAXKEYS=2)
    reader = load("s3_read")
    calls = []
    reader.instance.client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda params, **kwargs: calls.append(params))
    for n in range(1, 6):
        put(s3, "%s.%d" % (SECOND, n), "e%d" % n)
    read_all(reader)
    pages = [call["query_string"] for call in calls][:3]  # then the first re-listing
    assert [page["max-keys"] for page in pages] == [2, 2, 2]
    assert [page["prefix"] for page in pages] == ["web01/"] * 3
    assert "start-after" not in pages[0] and "continuation-token" in pages[1]
    del calls[:]
    poll(reader)  # the next poll starts LOOKBACK before the newest second read
    assert calls[0]["query_string"]["start-after"] == "web01/2026-03-01/09.55.34"


def test_an_object_landing_late_in_the_last_second_read_is_not_skipped(s3, reader):
    for n in range(1, 10):
        put(s3, "%s.%d" % (SECOND, n), "e%d" % n)
    assert read_all(reader) == ["e%d" % n for n in range(1, 10)]
    put(s3, "%s.10" % SECOND, "e10")  # sorts before .9 as text: StartAfter=.9 would miss it
    assert read_all(reader) == ["e10"]
    assert read_all(reader) == []


def test_the_server_prefix_has_its_slash(s3, settings, load):
    settings(SERVER="SERVER01")
    put(s3, "SERVER01/2026-03-01/10.00.34.1", "mine")
    put(s3, "SERVER010/2026-03-01/10.00.34.1", "not mine")
    assert read_all(load("s3_read")) == ["mine"]


def test_the_checkpoint_is_written_after_each_object_readable_by_its_owner_only(
        s3, settings, load, tmp_path):
    settings(POLL_INTERVAL=5)
    put(s3, SECOND + ".1", "a")
    put(s3, SECOND + ".2", "b")
    before = int(time.time())  # times in the checkpoint are whole seconds, UTC
    read_all(load("s3_read"))
    after = time.time()
    saved = checkpoint(tmp_path)
    for when in (saved["servers"]["web01"].pop("swept_at"),  # S3's time at the first sweep
                 saved.pop("started_at")):  # the reader's first start (see START_AT=now)
        assert before <= calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")) <= after
    assert saved == {
        "version": 3, "bucket": BUCKET, "other_keys": [], "servers": {"web01": {
            "newest": "2026-03-01/10.00.34", "read": {"2026-03-01/10.00.34": "1-2@"},
            "floor": None, "late_start": "2026-02-28/10.00.34", "sealed": "2026-03-01/09.55.34",
            "attempts": {}, "partial": {}, "set_aside": {}, "ids": {}}}}
    assert stat.S_IMODE(os.stat(tmp_path / "lastkey.log").st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["lastkey.log", "lastkey.log.lock"]


def test_a_restarted_reader_resumes_after_what_was_read(s3, settings, load):
    put(s3, SECOND + ".1", "a")
    first = load("s3_read")
    assert read_all(first) == ["a"]
    put(s3, SECOND + ".2", "b")
    assert read_all(restarted(first, load)) == ["b"]


def test_a_crash_before_the_checkpoint_write_posts_that_object_again_and_loses_nothing(
        s3, reader, load, build):
    for n in (1, 2, 3):
        put(s3, "%s.%d" % (SECOND, n), "e%d" % n)

    class KilledAtTheSecondSave(reader.Disk):
        saves = 0

        def write_atomically(self, path, data, sync=True):
            self.saves += path.endswith("lastkey.log")
            if self.saves == 2:
                raise KeyboardInterrupt("killed")  # not an Exception: nothing catches it
            reader.Disk.write_atomically(self, path, data, sync)
    killed = build(reader, disk=KilledAtTheSecondSave())
    with pytest.raises(KeyboardInterrupt):
        killed.read_data(api.input_module())
    assert read_all(restarted(killed, load)) == ["e2", "e3"]


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint_whole(s3, reader, build,
                                                                      tmp_path):
    disk = filling_disk(reader, fails="fsync")
    reader = build(reader, disk=disk)
    put(s3, SECOND + ".1", "a")
    read_all(reader)
    before = (tmp_path / "lastkey.log").read_bytes()
    put(s3, SECOND + ".2", "b")
    disk.full = True
    delay, _ = poll(reader)
    assert delay == reader.settings.POLL_INTERVAL
    assert (tmp_path / "lastkey.log").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["lastkey.log", "lastkey.log.lock"]
    [message] = api.logged("ERROR")
    assert "cannot write checkpoint %s: [Errno 28] No space left on device" % (
        tmp_path / "lastkey.log") in message


def test_while_the_checkpoint_cannot_be_written_reading_pauses_then_resumes_exactly_once(
        s3, reader, build, tmp_path):
    disk = filling_disk(reader)
    disk.full = True
    reader = build(reader, disk=disk)
    put(s3, SECOND + ".1", "a")
    put(s3, SECOND + ".2", "b")
    assert poll(reader)[1] == ["a"]  # posted, but its checkpoint could not be written
    assert poll(reader)[1] == []  # so nothing more is read
    assert poll(reader)[1] == []
    assert not (tmp_path / "lastkey.log").exists()
    assert "reading pauses until it can be written (nothing is lost)" in api.logged("ERROR")[0]
    disk.full = False
    assert read_all(reader) == ["b"]
    assert checkpoint(tmp_path)["servers"]["web01"]["read"] == {"2026-03-01/10.00.34": "1-2@"}


def test_deleting_the_checkpoint_reads_everything_again(s3, settings, load, tmp_path):
    put(s3, SECOND + ".1", "a")
    first = load("s3_read")
    read_all(first)
    os.remove(tmp_path / "lastkey.log")
    assert read_all(restarted(first, load)) == ["a"]


def test_the_old_scripts_lastkey_log_is_accepted(s3, settings, load, tmp_path):
    for n in range(1, 13):
        put(s3, "%s.%d" % (SECOND, n), "e%d" % n)
    put(s3, "web01/2026-03-01/10.00.35.1", "later")
    # The old reader went through keys as text: .1, .10, .11 were read, then it stopped.
    (tmp_path / "lastkey.log").write_text(SECOND + ".11\n")
    assert read_all(load("s3_read")) == ["e%d" % n for n in (2, 3, 4, 5, 6, 7, 8, 9, 12)] + [
        "later"]


def test_a_lastkey_log_holding_bytes_repr_is_accepted(s3, settings, load, tmp_path):
    put(s3, SECOND + ".1", "old")
    put(s3, SECOND + ".2", "new")
    (tmp_path / "lastkey.log").write_text("b'%s.1'" % SECOND)
    assert read_all(load("s3_read")) == ["new"]


@pytest.mark.parametrize("content, reason", [
    ("", "empty"),
    ("{not json", "Expecting property name"),
    ('{"version": 99}', "not a checkpoint of version 1 to 3"),
    ('{"version": 2, "bucket": "%s", "servers": {"web01": {"newest": 5}}}' % BUCKET,
     "malformed"),
    ("two\nlines", "neither JSON nor one key"),
    ("other-server/2026-03-01/10.00.34.1", "is not under web01/"),
])
def test_a_broken_checkpoint_reads_nothing_and_names_the_file(s3, reader, tmp_path, content,
                                                              reason):
    put(s3, SECOND + ".1", "a")
    (tmp_path / "lastkey.log").write_text(content)
    delay, events = poll(reader)
    assert (delay, events) == (reader.instance.settings.POLL_INTERVAL, [])
    [message] = api.logged("ERROR")
    assert "checkpoint %s is broken" % (tmp_path / "lastkey.log") in message
    assert reason in message
    assert (tmp_path / "lastkey.log").read_text() == content


def test_at_its_stop_the_reader_says_where_the_next_start_goes_on(s3, settings, load,
                                                                  tmp_path):
    settings(SERVER="web01,web02,web03,web04")
    for server in ("web01", "web02", "web03", "web04"):
        put(s3, "%s/2026-03-01/10.00.0%s.1" % (server, server[-1]), server)
    reader = load("s3_read")
    assert sorted(read_all(reader)) == ["web01", "web02", "web03", "web04"]
    reader.stop()
    assert api.logged("INFO")[-1] == (
        "s3_read: stops; the next start goes on from the checkpoint %s (web01 read up to "
        "2026-03-01T10:00:01Z, web02 read up to 2026-03-01T10:00:02Z, web03 read up to "
        "2026-03-01T10:00:03Z, 1 more server)" % (tmp_path / "lastkey.log"))


def test_a_reader_stopped_before_reading_says_nothing_of_a_place(s3, settings, load):
    load("s3_read").stop()
    assert not any("stops;" in line for line in api.logged())


def test_a_reader_waits_for_the_reader_of_another_process_on_its_checkpoint(s3, settings,
                                                                           load, tmp_path):
    put(s3, SECOND + ".1", "a")
    with LockInAnotherProcess(tmp_path / "lastkey.log.lock", "s3_read") as other:
        reader = load("s3_read")
        assert poll(reader) == (reader.instance.settings.POLL_INTERVAL, [])
        [error] = api.logged("ERROR")
        assert error == ("s3_read: another reader uses the checkpoint %s: s3_read (pid %d); "
                         "give each reader its own CHECKPOINT (an instance's: NXLOG_S3_"
                         "<INSTANCE>_CHECKPOINT) (trying again every 10.0 s)"
                         % (tmp_path / "lastkey.log", other.pid))
    assert read_all(reader) == ["a"]  # takes over once the other is gone


def test_a_checkpoint_of_another_bucket_is_refused(s3, settings, load, tmp_path):
    put(s3, SECOND + ".1", "a")
    first = load("s3_read")
    assert read_all(first) == ["a"]
    s3.create_bucket(Bucket="other-bucket")
    settings(BUCKET="other-bucket")
    delay, events = poll(restarted(first, load))
    assert events == []
    assert "belongs to bucket %s, not other-bucket" % BUCKET in api.logged("ERROR")[0]


def test_a_call_stopped_at_its_bound_reschedules_at_once(s3, settings, load):
    settings(MAX_OBJECTS_PER_CALL=2, POLL_INTERVAL=5)
    reader = load("s3_read")
    for n in range(1, 6):
        put(s3, "%s.%d" % (SECOND, n), "e%d" % n)
    assert poll(reader) == (reader.instance.more_waiting_delay, ["e1", "e2"])
    assert poll(reader) == (reader.instance.more_waiting_delay, ["e3", "e4"])
    assert poll(reader) == (5, ["e5"])


def test_a_bucket_gone_after_start_is_reported_and_polling_goes_on(settings,
                                                                    load_then_lose_bucket):
    settings(POLL_INTERVAL=5)
    delay, events = poll(load_then_lose_bucket("s3_read", "no-such-bucket"))
    assert (delay, events) == (5, [])
    assert "cannot read s3://no-such-bucket/ now" in api.logged("ERROR")[0]
    assert "NoSuchBucket" in api.logged("ERROR")[0]


def test_a_lasting_error_is_logged_once_a_minute_not_at_every_poll(settings,
                                                                     load_then_lose_bucket):
    settings(POLL_INTERVAL=0.01)
    reader = load_then_lose_bucket("s3_read", "no-such-bucket")
    for _ in range(5):
        assert poll(reader)[0] == 0.01
    [message] = api.logged("ERROR")
    assert "NoSuchBucket" in message and "trying again every 0.01 s" in message
    assert reader.instance.log.times_not_logged("NoSuchBucket") == 4  # for the next message


def test_an_unexpected_error_still_reschedules(s3, reader, build):
    class Broken(object):
        def get_paginator(self, name):
            return 1 / 0
    reader = build(reader, client=Broken())
    delay, _ = poll(reader)
    assert delay == reader.settings.POLL_INTERVAL
    assert "ZeroDivisionError" in api.logged("ERROR")[0]


def test_read_event_is_the_old_name_of_read_data(s3, reader):
    """A configuration that says `Call read_event` reads as one that says nothing."""
    put(s3, SECOND + ".1", "old name")
    delay, events = api.call_read_data(reader.read_event, api.input_module())
    assert [event.get_field("raw_event") for event in events] == ["old name"]
    assert delay is not None


def test_the_legacy_api_names_work_too(s3, settings, load):
    api.set_flavour(api.LEGACY)
    put(s3, SECOND + ".1", "old api")
    assert read_all(load("s3_read")) == ["old api"]


def restored(reader):
    _, events = api.call_read_data(reader.read_data, api.input_module("s3"))
    fields = [event.fields() for event in events]
    for one in fields:
        for added in ("EventReceivedTime", "SourceModuleName", "SourceModuleType"):
            del one[added]
    return fields


def test_json_objects_restore_every_field(s3, reader):
    put(s3, SECOND + ".1", json.dumps({"raw_event": "x", "Severity": 3, "Flag": True,
                                       "Ratio": 1.5, "Missing": None}),
        {"nxlog-s3-format": "json", "nxlog-s3-compression": "none"})
    assert restored(reader) == [{"raw_event": "x", "Severity": 3, "Flag": 1, "Ratio": "1.5",
                                 "Missing": "None"}]


def test_objects_without_metadata_are_one_raw_event_each(s3, reader):
    put(s3, SECOND + ".1", "line written by the old scripts")
    put(s3, SECOND + ".2", gzip.compress(b"gzipped by another tool"), ContentEncoding="gzip")
    put(s3, SECOND + ".3", gzip.compress(b"gzip, no Content-Encoding"))
    assert read_all(reader) == ["line written by the old scripts", "gzipped by another tool",
                                "gzip, no Content-Encoding"]


def test_invalid_utf8_keeps_its_bytes_as_escapes(s3, reader):
    put(s3, SECOND + ".1", b"caf\xe9")
    assert read_all(reader) == ["caf\\xe9"]
    assert "is not valid UTF-8" in api.logged("WARNING")[0]


JSON_META = {"nxlog-s3-format": "json", "nxlog-s3-compression": "none"}


@pytest.mark.parametrize("body, metadata, reason", [
    (b"{broken", JSON_META, "invalid JSON in its body"),
    (b"[1, 2]", JSON_META, "its body does not hold an object of fields"),
    (b"\x1f\x8b\x08\x00trunc", {"nxlog-s3-format": "raw", "nxlog-s3-compression": "gzip"},
     "cannot decompress it"),
    (b"x", {"nxlog-s3-format": "xml"}, "unknown nxlog-s3-format 'xml'"),
    (b"x", {"nxlog-s3-format": "raw", "nxlog-s3-compression": "brotli"},
     "unknown nxlog-s3-compression 'brotli'"),
    (pickle.dumps({"raw_event": "p"}), {"nxlog-s3-format": "pickle"},
     "it is a pickle, and unpickling runs code"),
])
def test_an_undecodable_object_is_set_aside_by_key_and_the_next_ones_are_read(
        s3, settings, load, tmp_path, body, metadata, reason):
    settings(MAX_ATTEMPTS=1)
    put(s3, SECOND + ".1", body, metadata)
    put(s3, SECOND + ".2", "after it")
    assert read_all(load("s3_read")) == ["after it"]
    [message] = api.logged("ERROR")
    assert "set aside 's3://%s/%s.1' after 1 failed attempts: %s" % (BUCKET, SECOND, reason) \
        in message
    assert "it stays in the bucket" in message
    set_aside = checkpoint(tmp_path)["servers"]["web01"]["set_aside"]
    assert list(set_aside) == [SECOND + ".1"]
    assert set_aside[SECOND + ".1"][0].startswith("1 failed attempts: %s" % reason)


def test_pickles_are_read_only_when_allowed(s3, settings, load):
    settings(ALLOW_PICKLE="true")
    put(s3, SECOND + ".1", pickle.dumps({"raw_event": "p", "n": 2}),
        {"nxlog-s3-format": "pickle"})
    assert restored(load("s3_read")) == [{"raw_event": "p", "n": 2}]


def test_an_object_left_inside_for_another_servers_turn_is_read_on_from_where_it_stopped(
        s3, settings, build):
    settings(SERVER="web01,web02", MAX_SECONDS_PER_CALL=0.01, POLL_INTERVAL=5)
    for server in ("web01", "web02"):
        put(s3, "%s/2026-03-01/10.00.00.1.jsonl.gz" % server, batch(*[
            "%s %d" % (server, number) for number in range(3000)]), JSON_LINES)
    reader = build("s3_read", clock_every=1)
    posted = read_all(reader)
    for server in ("web01", "web02"):
        assert [event for event in posted if event.startswith(server)] == [
            "%s %d" % (server, number) for number in range(3000)]
    assert api.logged("WARNING") == []
