"""Every object under a prefix the reader reads is posted exactly once or named in a warning,
once: whatever its key looks like, whatever time it claims, in whatever order objects land.

Each case against moto server over HTTP; the late backlog against Ceph's radosgw too.
"""

import calendar
import json
import os
import shutil
import stat
import time
import uuid

import pytest

from helpers import BUCKET, KEY, drain, key_second, locked_elsewhere, put, read_all, restarted
from nxlog_stub import api

SERVERS = ["moto_server", pytest.param("ceph", marks=pytest.mark.ceph)]


def point_at(endpoint, monkeypatch, settings):
    """The scripts loaded after this use a new bucket on ENDPOINT: (its client, its name)."""
    for name, value in endpoint.env.items():
        monkeypatch.setenv(name, value)
    bucket = endpoint.new_bucket("nxlog-never-miss-%s" % uuid.uuid4().hex[:12])
    settings(BUCKET=bucket)
    return endpoint.client(), bucket


@pytest.fixture
def on_moto(moto_server, monkeypatch, settings):
    return point_at(moto_server, monkeypatch, settings)


def key_at(epoch, counter=1):
    return "web01/%s.%d" % (time.strftime("%Y-%m-%d/%H.%M.%S", time.gmtime(epoch)), counter)


def keys_in(client, bucket):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", ())]


def key_epoch(key):
    return calendar.timegm(time.strptime(key_second(key).split("/", 1)[1], "%Y-%m-%d/%H.%M.%S"))


def write(writer, text, received):
    """One write_data call for an event RAW_EVENT=TEXT received at RECEIVED (a string, or an
    epoch given in local time as NXLog gives it)."""
    if not isinstance(received, str):
        received = api.local_time_string(received)
    event = api.new_event(api.output_module("s3"), {"raw_event": text,
                                                   "EventReceivedTime": received})
    assert api.call_write_data(writer.write_data, event), api.logged("ERROR")


def warnings_naming(text):
    return [line for line in api.logged("WARNING") + api.logged("ERROR") if text in line]


# ---- Keys the reader cannot trust --------------------------------------------------------

IMPOSSIBLE = ["web01/2026-02-30/10.00.00.1", "web01/2026-11-27/25.61.61.1",
              "web01/2026-11-27/23.59.60.1", "web01/0000-01-01/00.00.00.1"]


def test_an_impossible_key_is_reported_once_and_the_objects_around_it_are_read(
        on_moto, settings, load):
    client, bucket = on_moto
    settings(POLL_INTERVAL=5)
    for key in IMPOSSIBLE:
        put(client, key, "impossible", bucket=bucket)
    real = ["web01/2026-02-%02d/10.00.00.1" % day for day in range(1, 29)] + [
        "web01/2026-11-27/23.59.59.1", "web01/2026-11-28/00.00.00.1"]
    for key in real:
        put(client, key, key, bucket=bucket)
    reader = load("s3_read")
    assert read_all(reader) == sorted(real)  # 30 real objects, none passed over
    reader = restarted(reader, load)
    assert read_all(reader) == []
    for key in IMPOSSIBLE:
        [warning] = warnings_naming(repr("s3://%s/%s" % (bucket, key)))
        assert "is not read: its date or time cannot be" in warning


def test_a_stray_key_from_the_future_is_read_once_and_does_not_blind_the_reader(
        on_moto, settings, load):
    client, bucket = on_moto
    settings(POLL_INTERVAL=5, LOOKBACK=60)
    now = int(time.time())
    put(client, key_at(now - 60), "before it", bucket=bucket)
    put(client, "web01/2030-01-01/00.00.00.1", "the stray object", bucket=bucket)
    reader = load("s3_read")
    assert read_all(reader) == ["before it", "the stray object"]
    put(client, key_at(now - 30), "written after it, 1", bucket=bucket)
    put(client, key_at(now), "written after it, 2", bucket=bucket)
    assert read_all(reader) == ["written after it, 1", "written after it, 2"]
    reader = restarted(reader, load)
    put(client, key_at(now + 1), "after a restart", bucket=bucket)
    assert read_all(reader) == ["after a restart"]
    [warning] = warnings_naming("web01/2030-01-01/00.00.00.1")
    assert "ahead of this host's clock (more than MAX_AHEAD=300): it was read" in warning


def test_a_key_ahead_of_the_clock_by_less_than_max_ahead_moves_the_window(on_moto, settings,
                                                                         load):
    client, bucket = on_moto
    settings(POLL_INTERVAL=5, LOOKBACK=60, LATE_INTERVAL=86400)
    now = int(time.time())
    put(client, key_at(now + 200), "a clock 200 s ahead", bucket=bucket)
    reader = load("s3_read")
    assert read_all(reader) == ["a clock 200 s ahead"]
    put(client, key_at(now - 30), "230 s behind it", bucket=bucket)
    assert read_all(reader) == []  # behind the window: left to the next re-listing
    assert api.logged("WARNING") == []


# ---- Objects landing late ----------------------------------------------------------------

@pytest.mark.parametrize("endpoint_name", SERVERS)
def test_a_backlog_uploaded_hours_late_by_a_second_writer_is_read_exactly_once(
        request, endpoint_name, monkeypatch, settings, load):
    client, bucket = point_at(request.getfixturevalue(endpoint_name), monkeypatch, settings)
    settings(BATCH_EVENTS=5, BATCH_AGE=0.2, POLL_INTERVAL=0.2, LATE_INTERVAL=0,
             SPOOL_DIR="live.spool")
    live = load("s3_write")
    now = time.time()
    live_texts = ["live %02d" % n for n in range(20)]
    for text in live_texts:
        write(live, text, now)
    drain(live, seconds=60)
    live_keys = keys_in(client, bucket)
    reader = load("s3_read")
    assert read_all(reader) == live_texts

    settings(SPOOL_DIR="backlog.spool")  # a second writer with the same SERVER, back online
    backlog = load("s3_write")
    backlog_texts = ["backlog %02d" % n for n in range(20)]
    for n, text in enumerate(backlog_texts):
        write(backlog, text, now - 5 * 3600 + n)
    drain(backlog, seconds=60)
    backlog_keys = set(keys_in(client, bucket)) - set(live_keys)
    assert max(map(key_epoch, backlog_keys)) < min(map(key_epoch, live_keys)) - 4 * 3600

    reader = restarted(reader, load)
    assert read_all(reader) == backlog_texts  # in key order, found by the re-listing
    write(live, "live after", time.time())
    drain(live, seconds=60)
    assert read_all(reader) == ["live after"]
    assert read_all(restarted(reader, load)) == []  # nothing read twice, across restarts
    assert warnings_naming("landed more than") == []


# ---- Event times the writer cannot trust -------------------------------------------------

@pytest.mark.parametrize("tz", ["UTC", "America/Los_Angeles", "Asia/Tokyo"])
def test_an_absurd_event_time_keys_at_the_writer_clock_and_poisons_no_later_key(
        on_moto, settings, load, zone, tz):
    client, bucket = on_moto
    zone(tz)
    settings(FORMAT="json", POLL_INTERVAL=0.2)
    writer = load("s3_write")
    before = time.time()
    write(writer, "absurd", "9999-12-31 23:59:59")
    write(writer, "after it", before)
    drain(writer)
    writer = restarted_writer(writer, load)
    write(writer, "after a restart", before)
    drain(writer)
    keys = keys_in(client, bucket)
    assert len(keys) == 3 and all(KEY.match(key) and key.startswith("web01/") for key in keys), keys
    assert all(before - 2 <= key_epoch(key) <= time.time() + 1 for key in keys), keys
    [warning] = warnings_naming("EventReceivedTime '9999-12-31 23:59:59' lies more than "
                                "MAX_AHEAD=300 s ahead of this host's clock")
    assert "keyed at this host's clock instead, and keeps its field" in warning
    stored = client.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    # its field keeps its time (with its zone, where the zone's rules reach that far)
    assert json.loads(stored)["EventReceivedTime"][:19] in ("9999-12-31 23:59:59",
                                                            "9999-12-31T23:59:59")
    assert read_all(load("s3_read")) == ["absurd", "after it", "after a restart"]


@pytest.mark.parametrize("received", [
    "", "yesterday", "2026-13-01 00:00:00", "1969-12-31 23:00:00"])
def test_an_event_time_that_cannot_be_read_keys_at_the_clock_with_a_warning(
        on_moto, settings, load, received):
    client, bucket = on_moto
    writer = load("s3_write")
    before = time.time()
    write(writer, "x", received)
    drain(writer)
    [key] = keys_in(client, bucket)
    assert before - 1 <= key_epoch(key) <= time.time() + 1
    assert len(warnings_naming("EventReceivedTime %r cannot be read as a time since 1970"
                               % received)) == 1


def restarted_writer(writer, load):
    writer.stop()
    return load("s3_write")


def test_a_first_event_15_minutes_old_after_a_writer_restart_is_keyed_after_the_last_key(
        on_moto, settings, load):
    client, bucket = on_moto
    settings(POLL_INTERVAL=0.2, LATE_INTERVAL=86400)  # one re-listing, at the reader's start
    writer = load("s3_write")
    write(writer, "now", time.time())
    drain(writer)
    reader = load("s3_read")
    assert read_all(reader) == ["now"]
    writer = restarted_writer(writer, load)  # its spool is empty: it remembers the last key
    write(writer, "15 minutes old", time.time() - 900)
    drain(writer)
    first, second = sorted(keys_in(client, bucket), key=key_epoch)
    assert key_epoch(second) >= key_epoch(first)
    assert read_all(reader) == ["15 minutes old"]  # inside the window: at the next poll


# ---- Smaller holes -----------------------------------------------------------------------

def test_a_key_holding_a_newline_cannot_forge_a_log_line(s3, settings, load):
    settings(POLL_INTERVAL=5)
    put(s3, "web01/notes\n2026-11-28 10:00:00 ERROR forged", "x")
    put(s3, "web01/2026-03-01/10.00.00.1", "real")
    assert read_all(load("s3_read")) == ["real"]
    [warning] = api.logged("WARNING")
    assert "'s3://%s/web01/notes\\n2026-11-28 10:00:00 ERROR forged' is not read" % BUCKET \
        in warning
    assert all("\n" not in message for message in api.logged())


def test_removing_the_checkpoint_folder_while_reading_lets_no_second_reader_in(
        s3, settings, load, tmp_path):
    settings(POLL_INTERVAL=5, CHECKPOINT=tmp_path / "state" / "lastkey.log")
    put(s3, "web01/2026-03-01/10.00.00.1", "one")
    first = load("s3_read")
    assert read_all(first) == ["one"]
    shutil.rmtree(tmp_path / "state")
    put(s3, "web01/2026-03-01/10.00.01.1", "two")
    assert read_all(first) == ["two"]  # it takes its lock again, and writes its place again
    assert locked_elsewhere(tmp_path / "state" / "lastkey.log.lock")  # no second reader in
    assert read_all(restarted(first, load)) == []  # its place was written again, whole
    assert "the lock file of the checkpoint" in api.logged("WARNING")[0]


def test_a_spool_folder_open_to_others_is_made_owner_only(s3, settings, load, tmp_path):
    (tmp_path / "spool").mkdir(mode=0o755)
    os.chmod(tmp_path / "spool", 0o755)
    settings(SPOOL_DIR=tmp_path / "spool")
    load("s3_write")
    assert stat.S_IMODE(os.stat(tmp_path / "spool").st_mode) == 0o700


@pytest.mark.parametrize("state, reason", [
    ({"attempts": {"web01/2026-03-01/10.00.00.1": 3}}, "not [count, time]"),
    ({"partial": {"web01/2026-03-01/10.00.00.1": "3"}}, "not a count of events"),
    ({"read": {"2026-03-01/10.00.00": 1}}, "counters 1 are not text"),
    ({"read": {"2026-02-30/10.00.00": "1"}}, "day is out of range"),
    ({"newest": 5}, "newest is 5, not a second"),
    ({"attempts": []}, "attempts is [], not an object"),
])
def test_a_wrong_type_in_a_checkpoint_is_named_as_a_broken_checkpoint(
        s3, settings, load, tmp_path, state, reason):
    settings(POLL_INTERVAL=5)
    position = {"newest": None, "read": {}, "floor": None, "attempts": {}, "partial": {}}
    position.update(state)
    (tmp_path / "lastkey.log").write_text(json.dumps({
        "version": 3, "bucket": BUCKET, "other_keys": [], "servers": {"web01": position}}))
    put(s3, "web01/2026-03-01/10.00.00.1", "x")
    delay, posted = api.call_read_data(load("s3_read").read_data, api.input_module("s3"))
    assert posted == [] and delay is not None
    [error] = api.logged("ERROR")
    assert "checkpoint %s is broken (" % (tmp_path / "lastkey.log") in error and reason in error
    assert "unexpected" not in error


def test_an_object_landing_behind_the_horizon_is_reported_by_the_next_sweep(
        on_moto, settings, load, tmp_path):
    client, bucket = on_moto
    settings(POLL_INTERVAL=5, LATE_HORIZON=3600, LATE_INTERVAL=0, SWEEP_INTERVAL=3600)
    now = int(time.time())
    put(client, key_at(now), "now", bucket=bucket)
    reader = load("s3_read")
    assert read_all(reader) == ["now"]  # the first sweep notes S3's time
    behind = key_at(now - 2 * 3600)
    put(client, behind, "two hours behind", bucket=bucket)
    assert read_all(reader) == []  # the re-listing does not reach that far back
    assert warnings_naming(behind) == []
    reader.stop()
    last_sweep_an_hour_ago(tmp_path / "lastkey.log")
    reader = load("s3_read")
    assert read_all(reader) == []
    [warning] = warnings_naming(repr("s3://%s/%s" % (bucket, behind)))
    assert "is not read: S3 stored it at" in warning
    assert "more than LATE_HORIZON=3600 s behind the newest object read" in warning
    reader.stop()
    last_sweep_an_hour_ago(tmp_path / "lastkey.log")
    assert read_all(load("s3_read")) == []
    assert len(warnings_naming(behind)) == 1  # once


def last_sweep_an_hour_ago(path):
    """Rewrites the checkpoint at PATH as if SWEEP_INTERVAL=3600 had passed since the last
    sweep."""
    saved = json.loads(path.read_text())
    saved["servers"]["web01"]["swept_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                          time.gmtime(time.time() - 3600))
    path.write_text(json.dumps(saved))


def test_keys_in_local_time_east_of_utc_are_not_taken_for_keys_from_the_future(
        s3, settings, load, zone):
    zone("Asia/Tokyo")  # local keys run 9 h ahead of UTC ones
    settings(POLL_INTERVAL=5, KEY_TIME="local", LATE_INTERVAL=86400)
    now = time.time()

    def local_key(epoch):
        return "web01/%s.1" % time.strftime("%Y-%m-%d/%H.%M.%S", time.localtime(epoch))
    put(s3, local_key(now), "now")
    reader = load("s3_read")
    assert read_all(reader) == ["now"]
    put(s3, local_key(now - 120), "two minutes late")
    assert read_all(reader) == ["two minutes late"]  # inside LOOKBACK of the newest read
    assert api.logged("WARNING") == []
