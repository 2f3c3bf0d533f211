"""A hostile bucket, object by object, under the stub (which refuses what NXLog refuses, and
crashes where NXLog dies): no object crashes NXLog, stalls the reader or passes in silence.
The same objects run under a real NXLog in test_real_nxlog.py."""

import errno
import json
import os
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError, IncompleteReadError

from helpers import (
    BUCKET,
    ROOT,
    SteppedClock,
    all_objects,
    checkpoint,
    instance_of,
    poll,
    put,
    read_all,
    wait_for,
)
from hostile import HOSTILE, NEEDS_PYARROW, PARQUET, json_lines, truncated_gzip
from nxlog_stub import api

SECOND = "web01/2026-03-01/10.00"


def suffix_of(metadata):
    return ".parquet" if metadata is PARQUET else ".jsonl.gz"


def hostile_bucket(s3, name):
    """A good object, the hostile one NAME, a good one after it, and one of another server;
    the hostile one's key."""
    body, metadata = HOSTILE[name][0]()
    key = "%s.01.1%s" % (SECOND, suffix_of(metadata))
    put(s3, "%s.00.1.jsonl.gz" % SECOND, *json_lines({"raw_event": "before"}))
    put(s3, key, body, metadata)
    put(s3, "%s.02.1.jsonl.gz" % SECOND, *json_lines({"raw_event": "after"}))
    put(s3, "web02/2026-03-01/10.00.00.1.jsonl.gz", *json_lines({"raw_event": "web02"}))
    return key


def timed_polls(reader):
    """Polls until the reader has caught up: the events posted (as field dicts, less what
    NXLog adds), and the longest call in seconds."""
    posted, longest, module = [], 0.0, api.input_module("s3")
    for _ in range(1000):
        started = time.monotonic()
        delay, events = api.call_read_data(reader.read_data, module)
        longest = max(longest, time.monotonic() - started)
        assert delay is not None, api.logged("ERROR")
        posted += [{name: value for name, value in event.fields().items() if name not in (
            "EventReceivedTime", "SourceModuleName", "SourceModuleType")} for event in events]
        if delay == reader.instance.settings.POLL_INTERVAL:
            return posted, longest
        time.sleep(min(delay, 0.05))
    raise AssertionError("the reader never caught up")


def named(key):
    return [line for line in api.logged("WARNING") + api.logged("ERROR")
            if repr("s3://%s/%s" % (BUCKET, key)) in line]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_object_is_read_as_nxlog_takes_it_or_set_aside_by_name(s3, settings, load,
                                                                          tmp_path, name):
    if name in NEEDS_PYARROW:
        pytest.importorskip("pyarrow", reason="Parquet objects need pyarrow")
    settings(SERVER="web01,web02", MAX_ATTEMPTS=1, POLL_INTERVAL=0.05,
             MAX_SECONDS_PER_CALL=0.5)
    key = hostile_bucket(s3, name)
    posted, longest = timed_polls(load("s3_read"))
    raw = [event.get("raw_event") for event in posted]
    assert raw[0] == "before" and "after" in raw and "web02" in raw
    assert longest <= 0.5 + 1.0, "a read_data call took %.1f s" % longest
    _, outcome, fields = HOSTILE[name]
    set_aside = checkpoint(tmp_path)["servers"]["web01"]["set_aside"]
    if outcome == "set aside":
        assert key in set_aside
        assert any("set aside" in line for line in named(key)), api.logged("ERROR")
    else:
        assert key not in set_aside
    if fields is not None:
        assert fields in posted
        [warning] = named(key)  # one warning per object, naming the field
        assert "NXLog cannot take as it is" in warning


def test_a_big_integer_never_reaches_set_field_which_raises_on_it():
    event = api.input_module().logdata_new()
    with pytest.raises(SystemError):
        event.set_field("n", 2 ** 63)
    assert event.get_field("n") == -1  # what NXLog CE 3.1.15 leaves


@pytest.mark.parametrize("name", ["a\x00b", "\udc80"])
def test_the_stub_dies_where_nxlog_dies_on_a_field_name(name):
    with pytest.raises(api.Crash):
        api.input_module().logdata_new().set_field(name, "x")


def test_the_stub_cuts_text_at_a_nul_and_makes_lone_surrogates_question_marks():
    event = api.input_module().logdata_new()
    event.set_field("a", "x\x00y")
    event.set_field("b", "p\ud800q")
    assert (event.get_field("a"), event.get_field("b")) == ("x", "p?q")


def test_the_stub_runner_dies_of_sigsegv_where_nxlog_does(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text("def read_data(module):\n"
                      "    module.logdata_new().set_field('a\\x00b', 1)\n")
    conf = tmp_path / "crash.conf"
    conf.write_text("<Input in>\n  Module im_python\n  PythonCode %s\n</Input>\n"
                    "<Output out>\n  Module om_file\n  File \"%s\"\n</Output>\n"
                    "<Route r>\n  Path in => out\n</Route>\n" % (script, tmp_path / "out"))
    result = subprocess.run([sys.executable, "-m", "nxlog_stub", str(conf), "-q"], cwd=ROOT,
                            capture_output=True, timeout=60)
    assert result.returncode == -11


# ---- Failures of one object, whatever they are, are that object's ----

def fail_get_of(reader, key, make_error):
    """Every GET of KEY fails with make_error(); other requests go through."""
    def fail(params, **kwargs):
        if params.get("Key") == key:
            raise make_error()
    instance_of(reader).client.meta.events.register("provide-client-params.s3.GetObject",
                                                    fail)


def server_error():
    return ClientError({"Error": {"Code": "InternalError", "Message": "We encountered an "
                                  "internal error"},
                        "ResponseMetadata": {"HTTPStatusCode": 500}}, "GetObject")


def not_found():
    return ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"},
                        "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetObject")


@pytest.mark.parametrize("make_error", [server_error, lambda: IncompleteReadError(
    actual_bytes=10, expected_bytes=100), not_found, MemoryError, RecursionError],
    ids=["500 every time", "a body cut short", "404 after the listing", "MemoryError",
         "RecursionError"])
def test_an_object_that_always_fails_is_set_aside_by_name_and_every_other_is_read(
        s3, settings, build, tmp_path, make_error):
    settings(SERVER="web01,web02", MAX_ATTEMPTS=2, POLL_INTERVAL=5)
    bad = "%s.01.1.jsonl.gz" % SECOND
    for key, text in (("%s.00.1.jsonl.gz" % SECOND, "before"), (bad, "bad"),
                      ("%s.02.1.jsonl.gz" % SECOND, "after"),
                      ("web02/2026-03-01/10.00.00.1.jsonl.gz", "web02")):
        put(s3, key, *json_lines({"raw_event": text}))
    clock = SteppedClock()
    reader = build("s3_read", clock=clock)
    if make_error in (MemoryError, RecursionError):
        events = reader.decoder.events

        def failing(key, response, budget=None):
            if key == bad:
                raise make_error()
            return events(key, response, budget)
        reader.decoder.events = failing
    else:
        fail_get_of(reader, bad, make_error)
    posted = read_all(reader)
    assert posted == ["before", "after", "web02"]  # in the same call: nothing waits on it
    for poll_number in range(1, 21):  # a poll apart (POLL_INTERVAL), while S3 serves others
        if bad in checkpoint(tmp_path)["servers"]["web01"]["set_aside"]:
            break
        clock.step(5)
        put(s3, "web02/2026-03-01/10.00.%02d.1.jsonl.gz" % poll_number,
            *json_lines({"raw_event": "more"}))
        read_all(reader)
    assert bad in checkpoint(tmp_path)["servers"]["web01"]["set_aside"]
    assert any("set aside" in line for line in named(bad))


def test_an_s3_that_fails_every_get_sets_nothing_aside(s3, settings, build, tmp_path):
    settings(MAX_ATTEMPTS=1, POLL_INTERVAL=5)
    keys = ["%s.0%d.1.jsonl.gz" % (SECOND, n) for n in range(3)]
    for key in keys:
        put(s3, key, *json_lines({"raw_event": key}))
    clock = SteppedClock()
    reader = build("s3_read", clock=clock)

    def fail(params, **kwargs):
        raise server_error()
    reader.client.meta.events.register("provide-client-params.s3.GetObject", fail)
    for _ in range(5):
        poll(reader)
        clock.step(5)  # a poll later
    assert checkpoint(tmp_path)["servers"]["web01"]["set_aside"] == {}
    reader.client.meta.events.unregister("provide-client-params.s3.GetObject", fail)
    assert read_all(reader) == keys


# ---- An object is its key and its identity ----

@pytest.mark.parametrize("after_read", ["delete", "move"])
def test_a_key_stored_anew_after_the_reader_removed_it_is_read(s3, settings, load,
                                                               after_read):
    settings(AFTER_READ=after_read, MOVE_PREFIX="read/", POLL_INTERVAL=0.05)
    key = "%s.00.1.jsonl.gz" % SECOND
    put(s3, key, *json_lines({"raw_event": "writer A"}))
    reader = load("s3_read")
    assert read_all(reader) == ["writer A"]
    wait_for(lambda: key not in all_objects(s3), what="the delete, in a fetch thread")
    put(s3, key, *json_lines({"raw_event": "writer B, same second"}))  # the key is free
    assert read_all(reader) == ["writer B, same second"]


# ---- No object passes in silence ----

def test_a_server_that_appears_after_a_start_at_now_reader_started_is_read_from_its_start(
        s3, settings, load):
    settings(SERVER="*", START_AT="now", POLL_INTERVAL=0.05)
    reader = load("s3_read")
    started = time.time()
    assert read_all(reader) == []
    # the new server's first batch is keyed at its first event, after the reader started
    first_event = time.strftime("%Y-%m-%d/%H.%M.%S", time.gmtime(started + 2))
    put(s3, "web09/%s.1.jsonl.gz" % first_event, *json_lines({"raw_event": "new server"}))
    assert read_all(reader) == ["new server"]


def test_keys_at_the_top_of_the_bucket_are_named_by_the_reader(s3, settings, load):
    settings(SERVER="*")
    put(s3, "stray-at-the-top.log", "x")
    put(s3, "%s.00.1.jsonl.gz" % SECOND, *json_lines({"raw_event": "read"}))
    assert read_all(load("s3_read")) == ["read"]
    [line] = named("stray-at-the-top.log")
    assert "it lies at the top of the bucket, under no server" in line


def test_stray_keys_are_named_a_few_a_call_and_the_checkpoint_stays_bounded(
        s3, settings, load, tmp_path):
    settings(SWEEP_INTERVAL=0)
    for number in range(1030):
        put(s3, "%s.00.x%04d" % (SECOND, number), "stray")
    put(s3, "%s.01.1" % SECOND, "read")  # the checkpoint is saved with each object read
    reader = load("s3_read")
    calls = 0
    for _ in range(3):  # three passes, each until caught up (more calls on a busy machine)
        delay = None
        while delay != reader.instance.settings.POLL_INTERVAL:
            delay, _ = poll(reader)
            calls += 1
    warnings = api.logged("WARNING")
    assert len(warnings) <= calls * 21 + 5, (len(warnings), calls)
    assert any("more keys are not read" in line for line in warnings)
    assert len(checkpoint(tmp_path)["other_keys"]) == 1000


# ---- Files ----

@pytest.mark.parametrize("lock", ["CHECKPOINT.lock", "CHECKPOINT itself"])
def test_a_link_planted_at_the_checkpoint_or_its_lock_is_never_followed(s3, settings, load,
                                                                         tmp_path, lock):
    target = tmp_path / "target"
    target.write_text("someone else's file")
    os.symlink(str(target), str(tmp_path / ("lastkey.log.lock" if lock.endswith("lock")
                                            else "lastkey.log")))
    put(s3, "%s.00.1.jsonl.gz" % SECOND, *json_lines({"raw_event": "x"}))
    assert read_all(load("s3_read")) == []
    assert target.read_text() == "someone else's file"
    assert any(os.strerror(errno.ELOOP) in line for line in api.logged("ERROR"))


def test_reading_bombs_grows_the_readers_memory_by_less_than_150_mb_pyarrow_included(
        tmp_path):
    pytest.importorskip("pyarrow", reason="the Parquet bombs need pyarrow")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "programs",
                                                          "bomb_rss.py")],
                            capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)  # moto and the stub in the same process too: the
    grown = figures["peak_rss_mb"] - figures["rss_before_reading_mb"]  # bound on NXLog's own
    assert grown < 150, figures                                        # is in test_real_nxlog
    assert figures["after"] is True, figures


@pytest.mark.parametrize("after_read", ["delete", "move"])
def test_an_object_set_aside_stays_where_it_is_whatever_after_read_says(s3, settings, load,
                                                                       after_read):
    settings(AFTER_READ=after_read, MOVE_PREFIX="read/", MAX_ATTEMPTS=1)
    bad, good = "%s.00.1.jsonl.gz" % SECOND, "%s.01.1.jsonl.gz" % SECOND
    put(s3, bad, *truncated_gzip())
    put(s3, good, *json_lines({"raw_event": "good"}))
    reader = load("s3_read")
    assert read_all(reader) == ["good"]
    wait_for(lambda: good not in all_objects(s3), what="the good one's delete, in a fetch "
             "thread")
    assert bad in all_objects(s3) and good not in all_objects(s3)
    assert "read/" + bad not in all_objects(s3)


def test_long_text_that_nxlog_takes_whole_is_posted_as_it_is_with_no_warning(s3, settings,
                                                                              load):
    long_name, long_text = "n" * 300000, "\u00e9" * 300000  # 600,000 bytes: under 1 MiB
    put(s3, "%s.00.1.jsonl.gz" % SECOND, *json_lines({"raw_event": long_text, long_name: 1}))
    _, posted = api.call_read_data(load("s3_read").read_data, api.input_module())
    [event] = posted
    assert (event.get_field("raw_event"), event.get_field(long_name)) == (long_text, 1)
    assert api.logged("WARNING") == []
