"""The reader's commands, run as a user runs them, over HTTP: `status` (where a reader is, its
lag, what it set aside), `audit` (what the archive holds, and what is wrong with it, against
moto server and Ceph's radosgw) and `replay` (the events of a time range, in order)."""

import datetime
import gzip
import io
import json
import os
import pty
import stat
import time

import pytest

from helpers import BUCKET, JSON_LINES, drain, free_port, poll, put, read_all, script_command
from nxlog_stub import api

SERVERS = ["moto_server", pytest.param("ceph", marks=pytest.mark.ceph)]
BASE = 1772359200  # 2026-03-01T10:00:00Z


@pytest.fixture(params=SERVERS)
def endpoint(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def command(endpoint, tmp_path, monkeypatch, settings):
    """The scripts as commands against ENDPOINT, with a bucket of their own; the scripts
    this test loads in its own process (as NXLog's) use the same endpoint and bucket."""
    bucket = endpoint.new_bucket("nxlog-toolkit-%d" % free_port())
    for name, value in endpoint.env.items():
        monkeypatch.setenv(name, value)
    settings(BUCKET=bucket)
    return script_command(endpoint, bucket, tmp_path)


def key_of(epoch, counter, suffix=""):
    return "web01/%s.%d%s" % (time.strftime("%Y-%m-%d/%H.%M.%S", time.gmtime(epoch)), counter,
                              suffix)


def batch_key(epoch, counter):
    """The key of the writer's batch: a suffix names its content."""
    return key_of(epoch, counter, ".jsonl.gz")


def received(epoch):
    """EventReceivedTime as NXLog gives it: this host's local time, with no zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def write(load, settings, events, **writer_settings):
    """Stores EVENTS ((epoch received, text) pairs) with the writer, as NXLog would."""
    settings(**writer_settings)
    writer = load("s3_write")
    for epoch, text in events:
        assert api.call_write_data(writer.write_data, api.new_event(api.output_module(), {
            "raw_event": text, "EventReceivedTime": received(epoch)}))
    drain(writer)
    writer.stop()


def listing(command):
    pages = command.client.get_paginator("list_objects_v2").paginate(Bucket=command.bucket)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", ())}


# ---- audit ----

@pytest.fixture
def damaged_archive(command, load, settings):
    """An archive the writer made (batches of two events: three in the second BASE, one in
    BASE+1 and one on the next day), then damaged: its second object deleted, its first
    stored again under another key, an object that does not decode, a key off the scheme."""
    events = [(BASE, "a1"), (BASE, "a2"), (BASE, "b1"), (BASE, "b2"), (BASE, "c1"),
              (BASE, "c2"), (BASE + 1, "d1"), (BASE + 1, "d2"), (BASE + 86400, "e1"),
              (BASE + 86400, "e2")]
    write(load, settings, events, BATCH_EVENTS=2, BATCH_AGE=3600)
    client, bucket = command.client, command.bucket
    assert sorted(listing(command)) == sorted(
        [batch_key(BASE, 1), batch_key(BASE, 2), batch_key(BASE, 3), batch_key(BASE + 1, 1),
         batch_key(BASE + 86400, 1)])
    client.delete_object(Bucket=bucket, Key=batch_key(BASE, 2))
    client.copy_object(Bucket=bucket, Key=batch_key(BASE + 1, 2),
                       CopySource={"Bucket": bucket, "Key": batch_key(BASE, 1)})
    put(client, batch_key(BASE + 2, 1), b"not gzip at all",
        dict(JSON_LINES, **{"nxlog-s3-events": "3"}), bucket=bucket)
    put(client, "web01/2026-03-01/notes.txt", "a note", bucket=bucket)
    return listing(command)


def problems(shown):
    return sorted((problem["problem"], problem["key"]) for problem in shown["problems"])


def test_audit_finds_a_deleted_object_a_batch_stored_twice_and_a_key_off_the_scheme(
        command, damaged_archive):
    status, out, err = command("s3_read", "audit", "--json")
    assert (status, err) == (1, [])
    shown = json.loads(out[0])
    assert problems(shown) == [
        ("duplicate", batch_key(BASE + 1, 2)), ("missing", key_of(BASE, 2)),
        ("off_scheme", "web01/2026-03-01/notes.txt")]
    [duplicate] = [each for each in shown["problems"] if each["problem"] == "duplicate"]
    assert repr(batch_key(BASE, 1)) in duplicate["why"]
    first_day = [key for key in damaged_archive if key.startswith("web01/2026-03-01/") and
                 not key.endswith(".txt")]
    assert shown["servers"]["web01"] == {
        "2026-03-01": {"objects": 5, "events": 2 * 4 + 3, "unknown_events": 0,
                       "bytes": sum(damaged_archive[key] for key in first_day),
                       "hours": in_hour(10, 2 * 4 + 3)},
        "2026-03-02": {"objects": 1, "events": 2, "unknown_events": 0,
                       "bytes": damaged_archive[batch_key(BASE + 86400, 1)],
                       "hours": in_hour(10, 2)}}
    assert shown["looked_at"] == [{"server": "web01",
                                   "prefix": "s3://%s/web01/" % command.bucket}]


def in_hour(hour, events):
    """A day's events per hour, as audit --json gives them: EVENTS in HOUR alone."""
    return [events if each == hour else 0 for each in range(24)]


def test_a_deep_audit_also_finds_the_object_that_does_not_decode_and_why(command,
                                                                         damaged_archive):
    status, out, _ = command("s3_read", "audit", "--deep", "--json")
    assert status == 1
    shown = json.loads(out[0])
    assert ("undecodable", batch_key(BASE + 2, 1)) in problems(shown)
    [undecodable] = [each for each in shown["problems"] if each["problem"] == "undecodable"]
    assert undecodable["why"].startswith("cannot decompress it: ")
    assert len(shown["problems"]) == 4


def test_audit_prints_a_table_per_server_and_day_then_each_problem(command, damaged_archive):
    status, out, _ = command("s3_read", "audit")
    assert status == 1
    assert out[0] == "s3://%s/web01/, the first object to the last, listing and metadata " \
        "(--deep decodes every object)" % command.bucket
    assert out[1].split() == ["server", "day", "objects", "events", "bytes"]
    assert out[2].split()[:4] == ["web01", "2026-03-01", "5", "11"]
    assert out[4] == "3 problems:"
    assert any(line.startswith("  missing        %r: that second holds the counters 1,3"
                               % key_of(BASE, 2)) for line in out[5:])


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_audit_by_hour_draws_each_days_events_per_hour_with_gaps_plain_to_see(command):
    for hour, objects in ((0, 4), (1, 4), (2, 1), (4, 4)):  # 3 has none; 2 a quarter
        for counter in range(1, objects + 1):
            put(command.client, key_of(BASE - 10 * 3600 + hour * 3600, counter), "x",
                bucket=command.bucket)
    status, out, err = command("s3_read", "audit", "--by", "hour", "--to",
                               "2026-03-01T05:00:00Z", env={"PYTHONIOENCODING": "utf-8"})
    assert (status, err) == (0, [])
    assert out[1].split() == ["server", "day", "hour", "0", "to", "23", "(UTC)", "events"]
    bar = "\u2588\u2588\u2582\u00b7\u2588" + " " * 19  # after --to: blank, not a gap
    assert out[2] == "%-20s %-10s %s %12d" % ("web01", "2026-03-01", bar, 13)
    status, out, _ = command("s3_read", "audit", "--by", "hour", "--to",
                             "2026-03-01T05:00:00Z", env={"PYTHONIOENCODING": "ascii"})
    assert out[2].split()[2] == "882.8"  # eighths where stdout cannot show the blocks


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
@pytest.mark.parametrize("arguments", [("audit",), ("replay", "--from=-1d", "--to", "now")])
def test_audit_and_replay_of_a_server_with_no_object_at_all_say_so_and_exit_1(command,
                                                                              arguments):
    put(command.client, key_of(BASE, 1), "x", bucket=command.bucket)
    status, out, err = command("s3_read", *arguments, "--server", "web1")
    assert status == 1
    assert "WARNING s3_read: no object at all under s3://%s/web1/: is the server's name " \
        "right?" % command.bucket in err
    if arguments[0] == "audit":
        assert out[0].startswith("s3://%s/web1/, " % command.bucket)
        assert out[2].split() == ["web1", "no", "object", "at", "all"]


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_a_server_with_objects_but_none_in_the_range_is_no_failure(command):
    put(command.client, key_of(BASE, 1), "x", bucket=command.bucket)
    status, out, err = command("s3_read", "audit", "--from", "2026-03-02T00:00:00Z")
    assert (status, err) == (0, [])
    assert out[2].split() == ["web01", "no", "object", "in", "this", "range"]


def test_audit_of_a_time_range_looks_at_that_range_only(command, damaged_archive):
    status, out, _ = command("s3_read", "audit", "--json", "--from", "2026-03-01T10:00:01Z",
                             "--to", "2026-03-02T00:00:00Z")
    shown = json.loads(out[0])
    assert (shown["from"], shown["to"]) == ("2026-03-01T10:00:01Z", "2026-03-02T00:00:00Z")
    # the batch stored twice is not found: its first key lies before the range
    assert problems(shown) == [("off_scheme", "web01/2026-03-01/notes.txt")]
    assert list(shown["servers"]["web01"]) == ["2026-03-01"]
    assert shown["servers"]["web01"]["2026-03-01"]["objects"] == 3
    assert status == 1


def test_audit_of_a_sound_archive_of_every_server_exits_0(command, load, settings):
    write(load, settings, [(BASE, "one"), (BASE, "two"), (BASE + 5, "three")])
    write(load, settings, [(BASE, "four")], SERVER="db01", SPOOL_DIR="db01.spool")
    status, out, err = command("s3_read", "audit", "--server", "*", "--deep")
    assert (status, err) == (0, [])
    assert [line.split()[:4] for line in out[2:4]] == [["db01", "2026-03-01", "1", "1"],
                                                       ["web01", "2026-03-01", "3", "3"]]
    assert out[-1] == "0 problems"


def test_a_bad_time_is_a_usage_error_that_says_what_times_look_like(command):
    status, _, err = command("s3_read", "audit", "--from", "last tuesday")
    assert status == 2
    assert "argument --from: 'last tuesday' is not a time: use 2026-11-28T10:00:00Z" in err[-1]


def test_a_command_against_a_bucket_that_does_not_exist_exits_78(command):
    status, _, err = command("s3_read", "audit", "--bucket", "no-such-bucket-here")
    assert status == 78
    assert "the bucket no-such-bucket-here does not exist" in err[-1]


def test_a_command_that_cannot_reach_s3_exits_69_saying_so(command):
    status, _, err = command("s3_read", "audit", env={
        "AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % free_port(), "NXLOG_S3_RETRY_ATTEMPTS": "1",
        "NXLOG_S3_CONNECT_TIMEOUT": "1"})
    assert status == 69
    assert err[-1].startswith("ERROR s3_read: cannot read s3://%s/: " % command.bucket)


# ---- replay ----

@pytest.fixture
def timeline(command, load, settings):
    """Events every 10 s from BASE to BASE+200, in batches of three keyed at their first
    event: BASE (0, 10, 20), BASE+30 (30, 40, 50), ..."""
    events = [(BASE + offset, "at +%d" % offset) for offset in range(0, 210, 10)]
    write(load, settings, events, BATCH_EVENTS=3, BATCH_AGE=3600)
    return events


def replayed(out):
    return [json.loads(line)["raw_event"] for line in out]


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_a_replay_gives_exactly_the_events_of_its_range_in_order(command, timeline):
    # from +15: the batch keyed at +0 holds +20; to +105: the one keyed at +90 holds +110
    status, out, err = command("s3_read", "replay", "--from", "2026-03-01T10:00:15Z",
                               "--to", "2026-03-01T10:01:45Z")
    assert status == 0
    assert replayed(out) == ["at +%d" % offset for offset in range(20, 110, 10)]
    assert err == ["INFO s3_read: replayed 9 events of s3://%s/web01/ from 4 objects, "
                   "2026-03-01T10:00:15Z to 2026-03-01T10:01:45Z" % command.bucket]
    # as stored: with its zone (the reader gives NXLog its own form)
    assert json.loads(out[0])["EventReceivedTime"] == \
        datetime.datetime.fromtimestamp(BASE + 20).astimezone().isoformat()


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_a_replay_takes_times_with_any_zone_and_writes_raw_lines_to_a_file(command, timeline,
                                                                           tmp_path):
    status, out, _ = command("s3_read", "replay", "--from", "2026-03-01T19:00:00+09:00",
                             "--to", "2026-03-01T10:00:30Z", "--format", "raw", "-o", "out.txt")
    assert (status, out) == (0, [])
    assert (tmp_path / "out.txt").read_text() == "at +0\nat +10\nat +20\n"
    assert stat.S_IMODE(os.stat(tmp_path / "out.txt").st_mode) == 0o600


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_a_replay_shows_a_progress_bar_only_when_stderr_is_a_terminal(command, timeline):
    arguments = ("s3_read", "replay", "--from", "2026-03-01T10:00:00Z", "--to",
                 "2026-03-01T10:05:00Z")
    _, _, piped = command(*arguments)
    assert not any("%" in line for line in piped)
    terminal, other_end = pty.openpty()
    try:
        status, out, _ = command(*arguments, stderr=other_end)
        os.close(other_end)
        shown = read_to_the_end(terminal)
    finally:
        os.close(terminal)
    assert status == 0 and len(out) == 21
    assert "\r[" in shown and "%" in shown and "21 events" in shown


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_a_replay_names_the_objects_it_cannot_decode_and_exits_1(command, timeline):
    put(command.client, key_of(BASE + 35, 1), b"{broken\n", JSON_LINES, bucket=command.bucket)
    status, out, err = command("s3_read", "replay", "--from", "2026-03-01T10:00:30Z",
                               "--to", "2026-03-01T10:01:00Z")
    assert status == 1
    assert replayed(out) == ["at +30", "at +40", "at +50"]
    assert "WARNING s3_read: %r: it cannot be decoded (" % (
        "s3://%s/%s" % (command.bucket, key_of(BASE + 35, 1))) in err[0]
    assert err[0].endswith("; its events are not in the replay")


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_a_replay_to_a_file_it_cannot_write_is_a_usage_error(command, timeline):
    status, _, err = command("s3_read", "replay", "--from=-1d", "--to", "now", "-o",
                             "no-such-folder/out.jsonl")
    assert status == 2
    assert err == ["ERROR s3_read: cannot write -o no-such-folder/out.jsonl: [Errno 2] No such "
                   "file or directory: 'no-such-folder/out.jsonl'"]


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_a_replay_of_several_servers_is_refused_as_a_usage_error(command):
    status, _, err = command("s3_read", "replay", "--server", "*", "--from=-1h", "--to", "now")
    assert status == 2
    assert err == ["ERROR s3_read: replay reads one server: give --server NAME"]


def read_to_the_end(terminal):
    """What a terminal's other end was given, once it was closed."""
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # Linux: EIO once the other end is closed
            break
        if not chunk:
            break
        shown += chunk
    return shown.decode()


# ---- the reader's status ----

@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_status_shows_the_position_the_lag_and_what_was_set_aside_while_the_reader_runs(
        command, load, settings):
    settings(MAX_ATTEMPTS=1, POLL_INTERVAL=0.01)
    client, bucket = command.client, command.bucket
    put(client, key_of(BASE, 1), "first", bucket=bucket)
    put(client, key_of(BASE + 10, 1), b"{broken", {"nxlog-s3-format": "json"}, bucket=bucket)
    reader = load("s3_read")
    assert read_all(reader) == ["first"]
    put(client, key_of(BASE + 70, 1), "unread", bucket=bucket)
    put(client, key_of(BASE + 90, 1), "unread too", bucket=bucket)
    status, out, err = command("s3_read", "status", "--json")
    assert (status, err) == (0, [])
    shown = json.loads(out[0])
    assert shown["in_use"] is True
    [server] = shown["servers"]
    assert (server["server"], server["newest_read"], server["newest_in_bucket"]) == (
        "web01", "2026-03-01T10:00:10Z", "2026-03-01T10:01:30Z")
    assert (server["lag_seconds"], server["waiting"]) == (80, 2)
    [set_aside] = server["set_aside"]
    assert set_aside["key"] == key_of(BASE + 10, 1)
    assert set_aside["why"].startswith("1 failed attempts: invalid JSON in its body")
    status, out, _ = command("s3_read", "status")
    assert out[1] == "web01: read up to 2026-03-01T10:00:10Z; newest in the bucket " \
        "2026-03-01T10:01:30Z (%r): 80 s behind; 2 objects waiting" % key_of(BASE + 90, 1)
    assert out[2].startswith("  set aside at ")
    poll(reader)
    status, out, _ = command("s3_read", "status", "--json")
    assert json.loads(out[0])["servers"][0]["lag_seconds"] == 0


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_status_before_the_first_read_counts_everything_as_waiting_and_says_where_it_looked(
        command):
    put(command.client, key_of(BASE, 1), gzip.compress(b"x"), bucket=command.bucket)
    status, out, err = command("s3_read", "status")
    assert status == 1
    assert out == ["s3_read: checkpoint %s (no such file)" % os.path.abspath("lastkey.log"),
                   "web01: nothing read yet; newest in the bucket 2026-03-01T10:00:00Z (%r); "
                   "1 object waiting" % key_of(BASE, 1)]
    assert err == ["WARNING s3_read: no checkpoint at %s: no reader with these settings has "
                   "read anything. A relative CHECKPOINT lies in NXLog's SpoolDir: run this "
                   "there, as the user NXLog runs as, or give --checkpoint"
                   % os.path.abspath("lastkey.log")]


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_status_of_every_server_lists_each_server_in_the_bucket(command):
    put(command.client, key_of(BASE, 1), "web", bucket=command.bucket)
    put(command.client, "db01/2026-03-01/10.00.05.1", "db", bucket=command.bucket)
    status, out, _ = command("s3_read", "status", "--server", "*", "--json")
    assert (status, json.loads(out[0])["exists"]) == (1, False)  # no checkpoint yet: a warning
    assert [(server["server"], server["newest_in_bucket"], server["waiting"])
            for server in json.loads(out[0])["servers"]] == [
        ("db01", "2026-03-01T10:00:05Z", 1), ("web01", "2026-03-01T10:00:00Z", 1)]


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_a_replay_and_a_deep_audit_of_parquet_batches(command, load, settings):
    events = [(BASE + offset, "at +%d" % offset) for offset in range(0, 60, 10)]
    write(load, settings, events, FORMAT="parquet", BATCH_EVENTS=3, BATCH_AGE=3600)
    status, out, _ = command("s3_read", "replay", "--from", "2026-03-01T10:00:15Z",
                             "--to", "2026-03-01T10:00:45Z")
    assert status == 0
    assert replayed(out) == ["at +20", "at +30", "at +40"]
    assert json.loads(out[0])["EventReceivedTime"] == "2026-03-01T10:00:20+00:00"  # UTC
    status, out, _ = command("s3_read", "audit", "--deep", "--json")
    assert status == 0
    assert json.loads(out[0])["servers"]["web01"]["2026-03-01"]["events"] == 6


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_a_reader_without_pyarrow_says_what_a_parquet_object_needs(command, load, settings,
                                                                   no_pyarrow):
    write(load, settings, [(BASE, "one"), (BASE, "two")], FORMAT="parquet", BATCH_EVENTS=2)
    status, out, _ = command("s3_read", "audit", "--deep", "--json",
                             env={"PYTHONPATH": no_pyarrow})
    assert status == 1
    [problem] = json.loads(out[0])["problems"]
    assert (problem["problem"], problem["why"]) == (
        "undecodable", "it is Parquet: install the pyarrow package for the Python NXLog runs")


def test_an_object_deleted_while_a_replay_runs_is_named_and_the_rest_replayed(s3, settings,
                                                                              load):
    put(s3, key_of(BASE, 1), "first")
    put(s3, key_of(BASE + 1, 1), "deleted")
    module = load("s3_read")
    reader = module.instance

    def delete_it_first(params, **kwargs):  # as a reader with AFTER_READ=delete would
        if params["Key"] == key_of(BASE + 1, 1):
            s3.delete_object(Bucket=BUCKET, Key=params["Key"])
    reader.client.meta.events.register("provide-client-params.s3.GetObject", delete_it_first)
    output = io.BytesIO()
    replay = module.Replay(reader, "web01", BASE, BASE + 60, 3600, module._raw_line, output)
    replay.run(module.Progress(io.StringIO(), BASE, BASE + 60, reader.clock))
    assert (output.getvalue(), replay.objects, replay.missed) == (b"first\n", 1, 1)
    [warning] = api.logged("WARNING")
    assert "%r: it was deleted while the replay ran" % (
        "s3://%s/%s" % (BUCKET, key_of(BASE + 1, 1))) in warning



@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_audit_of_a_key_with_a_huge_counter_reports_the_gap_as_a_range(command):
    put(command.client, key_of(BASE, 1), "first", bucket=command.bucket)
    put(command.client, key_of(BASE, 3), "third", bucket=command.bucket)
    put(command.client, key_of(BASE, 10 ** 20), "huge", bucket=command.bucket)
    status, out, _ = command("s3_read", "audit", "--json")
    assert status == 1
    [missing] = json.loads(out[0])["problems"]
    assert missing["key"] == key_of(BASE, 2)[:-1] + "2,4-%d" % (10 ** 20 - 1)


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_a_batch_without_its_count_of_events_is_counted_only_by_a_deep_audit(command):
    put(command.client, key_of(BASE, 1, ".jsonl.gz"), gzip.compress(b'{"raw_event": "a"}\n' * 2),
        JSON_LINES, bucket=command.bucket)
    status, out, _ = command("s3_read", "audit", "--json")
    assert (status, json.loads(out[0])["servers"]["web01"]["2026-03-01"]["unknown_events"]) == (
        0, 1)
    status, out, _ = command("s3_read", "audit", "--deep", "--json")
    assert (status, json.loads(out[0])["servers"]["web01"]["2026-03-01"]["events"]) == (0, 2)


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
@pytest.mark.parametrize("margin", ["-5", "an hour"])
def test_a_margin_that_would_start_after_from_is_a_usage_error(command, margin):
    status, _, err = command("s3_read", "replay", "--from=-1h", "--to", "now",
                             "--margin=%s" % margin)
    assert status == 2
    assert "argument --margin: %r is not a number of seconds, 0 or more" % margin in err[-1]


# ---- Hostile objects, in the commands (see also test_hostile_bucket.py) ----

HOSTILE_FOR_COMMANDS = {  # key offset -> (body, metadata): each fails in its own way
    33: (gzip.compress(b'{"raw_event": "deep", "x": ' + b"[" * 100000 + b"]" * 100000 +
                       b"}\n"), JSON_LINES),
    34: (gzip.compress(b'{"raw_event": "cut"}\n' * 50)[:40], JSON_LINES),
    36: (b"x", {"nxlog-s3-format": "a format of the future"}),
}


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_replay_and_a_deep_audit_name_each_hostile_object_go_on_and_exit_1(command, timeline):
    for offset, (body, metadata) in HOSTILE_FOR_COMMANDS.items():
        put(command.client, key_of(BASE + offset, 1), body, metadata, bucket=command.bucket)
    status, out, err = command("s3_read", "replay", "--from", "2026-03-01T10:00:30Z",
                               "--to", "2026-03-01T10:01:00Z")
    assert status == 1
    assert replayed(out) == ["at +30", "at +40", "at +50"]
    status, out, _ = command("s3_read", "audit", "--deep", "--json")
    assert status == 1
    problems = {problem["key"]: problem for problem in json.loads("".join(out))["problems"]}
    for offset in HOSTILE_FOR_COMMANDS:
        key = key_of(BASE + offset, 1)
        assert any(repr("s3://%s/%s" % (command.bucket, key)) in line for line in err), key
        assert problems[key]["problem"] == "undecodable", problems
    assert "nested too deep" in problems[key_of(BASE + 33, 1)]["why"]


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
def test_audit_names_keys_at_the_top_of_the_bucket(command, timeline):
    put(command.client, "stray-at-the-top.log", b"x", bucket=command.bucket)
    status, out, _ = command("s3_read", "audit", "--json", env={"NXLOG_S3_SERVER": "*"})
    assert status == 1
    [problem] = json.loads("".join(out))["problems"]
    assert (problem["key"], problem["problem"]) == ("stray-at-the-top.log", "off_scheme")


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
@pytest.mark.parametrize("name", ["audit", "replay"])
def test_audit_and_replay_refuse_a_reversed_range_alike(command, name):
    status, out, err = command("s3_read", name, "--from", "2026-03-01T10:01:00Z",
                               "--to", "2026-03-01T10:00:00Z")
    assert (status, out) == (2, [])
    assert "--to 2026-03-01T10:00:00Z does not come after --from 2026-03-01T10:01:00Z" in \
        err[-1]


@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
@pytest.mark.parametrize("there", ["a file", "a link"])
def test_replay_o_refuses_what_is_there_unless_forced_and_writes_a_new_0600_file(
        command, timeline, tmp_path, there):
    target = tmp_path / "precious"
    target.write_text("kept")
    os.chmod(str(target), 0o644)
    out_file = tmp_path / "out.jsonl"
    if there == "a file":
        out_file.write_text("old")
        os.chmod(str(out_file), 0o644)
    else:
        os.symlink(str(target), str(out_file))
    arguments = ["replay", "--from", "2026-03-01T10:00:30Z", "--to", "2026-03-01T10:01:00Z",
                 "-o", str(out_file)]
    status, _, err = command("s3_read", *arguments)
    assert status == 2 and "--force replaces it" in err[-1]
    assert target.read_text() == "kept"
    status, _, _ = command("s3_read", *arguments, "--force")
    assert status == 0
    assert not os.path.islink(str(out_file)) and target.read_text() == "kept"
    assert stat.S_IMODE(os.stat(str(out_file)).st_mode) == 0o600
    assert replayed(out_file.read_text().splitlines()) == ["at +30", "at +40", "at +50"]
