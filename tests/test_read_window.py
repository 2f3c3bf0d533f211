"""s3_read.py never misses an object: late objects in the lookback window, several servers,
objects it cannot read, every kind of object, and what happens to an object once read."""

import gzip
import json
import pickle
import time
import tracemalloc

import pytest
from botocore.exceptions import ReadTimeoutError

from helpers import (
    BUCKET,
    JSON_LINES,
    SteppedClock,
    batch,
    checkpoint,
    gzip_bomb,
    poll,
    put,
    read_all,
    restarted,
)
from nxlog_stub import api


@pytest.fixture
def reader(s3, settings, load):
    settings(POLL_INTERVAL=5, LOOKBACK=60)
    return load("s3_read")


def key_at(second, counter, server="web01"):
    return "%s/2026-03-01/10.%s.%d" % (server, second, counter)


# ---- Late objects ----

def test_objects_landing_late_inside_the_window_are_read_once(s3, reader):
    for n in range(1, 10):
        put(s3, key_at("00.34", n), "e%d" % n)
    put(s3, key_at("01.00", 1), "newest")
    assert read_all(reader) == ["e%d" % n for n in range(1, 10)] + ["newest"]
    put(s3, key_at("00.34", 10), "tenth of an older second")  # counter 10, after .9
    put(s3, key_at("00.40", 1), "another writer, 20 s behind")
    put(s3, key_at("00.05", 1, ), "a retried upload, 55 s behind")
    assert read_all(reader) == ["a retried upload, 55 s behind", "tenth of an older second",
                                "another writer, 20 s behind"]
    assert read_all(reader) == []
    assert api.logged("WARNING") == []


def test_an_object_landing_behind_the_window_is_read_by_the_next_re_listing(s3, settings,
                                                                             load):
    settings(LOOKBACK=60, LATE_INTERVAL=0)  # a re-listing each time the reader caught up
    reader = load("s3_read")
    put(s3, key_at("02.00", 1), "newest")
    assert read_all(reader) == ["newest"]
    put(s3, key_at("00.30", 1), "90 s behind")
    assert read_all(reader) == ["90 s behind"]
    assert read_all(reader) == []
    assert api.logged("WARNING") == []


def test_the_re_listing_waits_late_interval_between_two_listings(s3, settings, load):
    settings(LOOKBACK=60, LATE_INTERVAL=3600)
    reader = load("s3_read")
    put(s3, key_at("02.00", 1), "newest")
    assert read_all(reader) == ["newest"]  # the first re-listing comes at once
    put(s3, key_at("00.30", 1), "90 s behind")
    assert read_all(reader) == []
    reader.instance.late_due.clear()  # as if LATE_INTERVAL had passed
    assert read_all(reader) == ["90 s behind"]


def test_an_object_that_fell_behind_the_horizon_is_reported_once_and_not_read(s3, settings,
                                                                               load, tmp_path):
    settings(LOOKBACK=60, LATE_HORIZON=120, LATE_INTERVAL=0)
    reader = load("s3_read")
    put(s3, key_at("02.00", 1), "first")  # the re-listing covers 10.00.00 on
    assert read_all(reader) == ["first"]
    put(s3, key_at("05.00", 1), "newest")  # now 10.03.00 on
    put(s3, key_at("00.30", 1), "270 s behind")  # behind the window of 10.02.00 too
    assert read_all(reader) == ["newest"]
    assert read_all(reader) == []
    [warning] = api.logged("WARNING")
    assert "'s3://%s/%s' is not read: it landed more than LATE_HORIZON=120 s behind the " \
        "newest object read" % (BUCKET, key_at("00.30", 1)) in warning
    [(why, when)] = checkpoint(tmp_path)["servers"]["web01"]["set_aside"].values()
    assert why.startswith("it landed more than LATE_HORIZON=120 s") and when.endswith("Z")


def test_the_checkpoint_stays_bounded_by_the_horizon(s3, settings, load, tmp_path):
    settings(LOOKBACK=60, LATE_HORIZON=120, LATE_INTERVAL=0)
    for minute in range(10):
        put(s3, "web01/2026-03-01/10.%02d.00.1" % minute, "m%d" % minute)
    read_all(load("s3_read"))
    recent = checkpoint(tmp_path)["servers"]["web01"]["read"]
    late = json.loads((tmp_path / "lastkey.log.late").read_text())["servers"]["web01"]
    assert not set(recent) & set(late)
    assert sorted(set(recent) | set(late)) == [
        "2026-03-01/10.07.00", "2026-03-01/10.08.00", "2026-03-01/10.09.00"]  # the horizon
    assert sorted(recent) == ["2026-03-01/10.08.00", "2026-03-01/10.09.00"]


def test_a_backlog_read_behind_the_window_goes_to_the_late_file_sixty_seconds_at_a_time(
        s3, settings, load, tmp_path):
    settings(LOOKBACK=0, LATE_INTERVAL=0)  # max(LOOKBACK, 60): 60 seconds at a time
    put(s3, "web01/2026-03-01/11.00.00.1", "newest")
    reader = load("s3_read")
    assert read_all(reader) == ["newest"]
    backlog = ["web01/2026-03-01/10.%02d.%02d.1" % (n // 60, n % 60) for n in range(90)]
    for key in backlog:
        put(s3, key, key)
    assert read_all(reader) == backlog
    recent = checkpoint(tmp_path)["servers"]["web01"]["read"]
    late = json.loads((tmp_path / "lastkey.log.late").read_text())["servers"]["web01"]
    assert len(late) == 60 and len(recent) == 30 + 1  # 30 still waiting, and the newest
    assert sorted(late) + sorted(recent)[:30] == sorted(key[6:-2] for key in backlog)
    assert read_all(restarted(reader, load)) == []  # both files together: nothing twice


def test_keys_outside_the_scheme_are_reported_once_and_not_read(s3, reader):
    put(s3, "web01/notes.txt", "not a log object")
    put(s3, key_at("00.34", 1), "kept")
    assert read_all(reader) == ["kept"]
    assert read_all(reader) == []
    [warning] = api.logged("WARNING")
    assert "'s3://%s/web01/notes.txt' is not read" % BUCKET in warning


# ---- Several servers ----

def test_several_servers_are_read_each_in_its_own_order(s3, settings, load, tmp_path):
    settings(SERVER="web01,web02", POLL_INTERVAL=5)
    put(s3, key_at("00.34", 2), "web01 second")
    put(s3, key_at("00.34", 1), "web01 first")
    put(s3, key_at("00.10", 1, "web02"), "web02 only")
    put(s3, key_at("00.10", 1, "db01"), "not asked for")
    assert read_all(load("s3_read")) == ["web01 first", "web01 second", "web02 only"]
    assert sorted(checkpoint(tmp_path)["servers"]) == ["web01", "web02"]


def test_every_server_in_the_bucket_with_a_star(s3, settings, load):
    settings(SERVER="*", POLL_INTERVAL=5, AFTER_READ="move", MOVE_PREFIX="done/")
    put(s3, key_at("00.34", 1), "web01")
    put(s3, key_at("00.10", 1, "db01"), "db01")
    assert sorted(read_all(load("s3_read"))) == ["db01", "web01"]
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sorted(keys) == ["done/" + key_at("00.10", 1, "db01"), "done/" + key_at("00.34", 1)]


def test_a_busy_server_does_not_starve_the_others(s3, settings, load):
    settings(SERVER="web01,web02", POLL_INTERVAL=5, MAX_OBJECTS_PER_CALL=2)
    for n in range(1, 7):
        put(s3, key_at("00.34", n), "web01 %d" % n)
    put(s3, key_at("00.34", 1, "web02"), "web02")
    reader = load("s3_read")
    first, second = poll(reader)[1], poll(reader)[1]
    assert "web02" in first + second


# ---- Objects that cannot be read ----

def test_an_object_that_fails_is_tried_again_then_set_aside(s3, settings, build, tmp_path):
    settings(MAX_ATTEMPTS=3, POLL_INTERVAL=5)
    put(s3, key_at("00.34", 1), b"{broken", {"nxlog-s3-format": "json"})
    put(s3, key_at("00.34", 2), "after it")
    clock = SteppedClock()
    reader = build("s3_read", clock=clock)
    assert poll(reader)[1] == ["after it"]
    assert "(attempt 1 of 3)" in api.logged("WARNING")[0]
    assert checkpoint(tmp_path)["servers"]["web01"]["attempts"][key_at("00.34", 1)][0] == 1
    for _ in range(2):
        clock.step(5)  # a poll later
        assert poll(reader)[1] == []
    assert "(attempt 2 of 3)" in api.logged("WARNING")[1]
    assert "set aside 's3://%s/%s' after 3 failed attempts" % (BUCKET, key_at("00.34", 1)) in \
        api.logged("ERROR")[0]
    assert checkpoint(tmp_path)["servers"]["web01"]["attempts"] == {}
    clock.step(5)
    assert poll(reader)[1] == []  # set aside for good


@pytest.mark.parametrize("streamed", [False, True], ids=["fetched whole", "streamed"])
def test_an_object_failing_partway_is_retried_past_the_events_it_posted(s3, settings, build,
                                                                          tmp_path, streamed):
    settings(MAX_ATTEMPTS=2, POLL_INTERVAL=5)
    body = gzip.decompress(batch("one", "two")) + b"{broken\n" + gzip.decompress(batch("four"))
    put(s3, key_at("00.34", 1), gzip.compress(body), JSON_LINES)
    # streamed: decoded by a thread of its own, the error comes across to read_data
    clock = SteppedClock()
    reader = build("s3_read", clock=clock, whole_object=10 if streamed else 8 << 20)
    assert poll(reader)[1] == ["one", "two"]
    assert checkpoint(tmp_path)["servers"]["web01"]["partial"] == {key_at("00.34", 1): 2}
    clock.step(5)  # a poll later
    assert poll(reader)[1] == []  # the retry fails at the same line, posting nothing again
    assert "invalid JSON in line 3" in api.logged("ERROR")[0]
    assert checkpoint(tmp_path)["servers"]["web01"]["partial"] == {}


def test_a_streamed_object_cut_short_posts_what_came_once_and_is_set_aside(s3, settings,
                                                                          build):
    settings(MAX_ATTEMPTS=1, POLL_INTERVAL=0.05)
    whole = batch(*["line %04d" % n for n in range(2000)])
    put(s3, key_at("00.34", 1), whole[:len(whole) // 2], JSON_LINES)  # a truncated gzip
    put(s3, key_at("00.34", 2), batch("after it"), JSON_LINES)
    reader = build("s3_read", whole_object=10)
    posted = read_all(reader)
    assert posted[-1] == "after it"
    before = posted[:-1]
    assert before == ["line %04d" % n for n in range(len(before))] and len(before) < 2000
    assert "set aside 's3://%s/%s'" % (BUCKET, key_at("00.34", 1)) in api.logged("ERROR")[0]
    assert "cannot decompress it" in api.logged("ERROR")[0]


def test_a_network_error_inside_an_object_is_no_failed_attempt_and_the_next_poll_reads_it(
        s3, settings, build, monkeypatch):
    settings(MAX_ATTEMPTS=1, POLL_INTERVAL=5)
    put(s3, key_at("00.34", 1), batch("one", "two"), JSON_LINES)
    clock = SteppedClock()
    reader = build("s3_read", clock=clock)
    failures = iter([1])

    def time_out_once(params, **kwargs):
        if next(failures, None):
            raise ReadTimeoutError(endpoint_url="http://127.0.0.1/" + params["Key"])
    reader.client.meta.events.register("provide-client-params.s3.GetObject", time_out_once)
    assert poll(reader)[1] == []
    assert "cannot read %r now: S3 or the network failed: Read timeout on endpoint URL" % (
        "s3://%s/%s" % (BUCKET, key_at("00.34", 1))) in api.logged("ERROR")[0]
    assert api.logged("WARNING") == []  # no attempt counted: MAX_ATTEMPTS=1 would set it aside
    clock.step(5)  # the next poll (POLL_INTERVAL) tries it again
    assert read_all(reader) == ["one", "two"]


@pytest.mark.parametrize("metadata", [JSON_LINES, {}], ids=["batch", "old-script object"])
def test_a_decompression_bomb_is_set_aside_in_bounded_memory(s3, settings, load, metadata):
    settings(MAX_EVENT_BYTES=1 << 20, MAX_ATTEMPTS=1)
    put(s3, key_at("00.34", 1), gzip_bomb(64 << 20), metadata)  # 64 MiB of zeros, no newline
    put(s3, key_at("00.34", 2), "after it")
    reader = load("s3_read")
    tracemalloc.start()
    try:
        assert read_all(reader) == ["after it"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, "%d MiB" % (peak >> 20)
    assert "is larger than MAX_EVENT_BYTES=1048576 once decompressed (a decompression " \
           "bomb?)" in api.logged("ERROR")[0]


def test_max_event_bytes_0_reads_an_event_of_any_size_as_far_as_nxlog_takes_it(s3, settings,
                                                                              load):
    settings(MAX_EVENT_BYTES=0)
    put(s3, key_at("00.34", 1), gzip.compress(b"x" * (2 << 20)))  # 2,000 times smaller
    assert read_all(load("s3_read")) == ["x" * (1 << 20)]  # NXLog's limit: the rest is cut
    assert "text beyond NXLog's 1048576 bytes a field, cut there" in api.logged("WARNING")[0]


def test_an_event_up_to_max_event_bytes_is_read(s3, settings, load):
    settings(MAX_EVENT_BYTES=1000)
    line = json.dumps({"raw_event": "y" * 900}).encode() + b"\n"
    put(s3, key_at("00.34", 1), gzip.compress(line * 3), JSON_LINES)
    assert read_all(load("s3_read")) == ["y" * 900] * 3


def deny(key):
    """Makes GetObject of KEY answer 403, as a bucket policy denying one key would."""
    class Denied(object):
        status_code = 403

    def handler(params, **kwargs):
        if params["url_path"].endswith(key):
            return Denied(), {"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                              "ResponseMetadata": {"HTTPStatusCode": 403}}
    return handler


def test_a_403_on_one_key_does_not_stop_the_others(s3, settings, load):
    settings(MAX_ATTEMPTS=1)
    reader = load("s3_read")
    reader.instance.client.meta.events.register("before-call.s3.GetObject",
                                                deny(key_at("00.34", 1)))
    put(s3, key_at("00.34", 1), "forbidden")
    put(s3, key_at("00.34", 2), "allowed")
    assert read_all(reader) == ["allowed"]
    assert "AccessDenied" in api.logged("ERROR")[0]


def test_a_large_batch_is_streamed_and_every_line_posted(s3, settings, build):
    settings(POLL_INTERVAL=5, LOOKBACK=60)
    reader = build("s3_read", whole_object=1000)
    texts = ["line %05d %s" % (n, "x" * 50) for n in range(2000)]
    put(s3, key_at("00.34", 1), batch(*texts), JSON_LINES)
    assert read_all(reader) == texts


def busy_nxlog(clock):
    """An input module whose NXLog takes 0.1 ms of CLOCK's time over each event posted, so
    that 3,000 events take more than two calls of MAX_SECONDS_PER_CALL=0.01, whatever the
    machine's speed."""
    module = api.input_module("s3")

    def take(event):
        clock.step(0.0001)
        module.posted.append(event)
    module.deliver = take
    return module


def test_a_call_stops_inside_a_large_object_when_its_time_is_up_and_the_next_goes_on(
        s3, settings, build, tmp_path):
    settings(MAX_SECONDS_PER_CALL=0.01, POLL_INTERVAL=5)
    clock = SteppedClock()
    reader = build("s3_read", clock=clock, whole_object=1000, clock_every=100)
    texts = ["line %05d" % n for n in range(3000)]
    put(s3, key_at("00.34", 1), batch(*texts), JSON_LINES)
    posted, calls, module, stopped_inside = [], 0, busy_nxlog(clock), []
    while True:
        delay, events = poll(reader, module)
        posted += events
        calls += 1
        if delay == reader.settings.POLL_INTERVAL:
            break
        if (tmp_path / "lastkey.log").exists():  # S3 may be slow to list it at first
            partial = checkpoint(tmp_path)["servers"].get("web01", {}).get("partial", {})
            if 0 < partial.get(key_at("00.34", 1), 0) < 3000:
                stopped_inside.append(partial[key_at("00.34", 1)])
    assert posted == texts
    assert stopped_inside and calls > 2


def test_a_restart_inside_a_large_object_posts_none_of_its_events_twice(s3, settings, build,
                                                                        tmp_path):
    settings(MAX_SECONDS_PER_CALL=0.01, POLL_INTERVAL=5)
    clock = SteppedClock()
    first = build("s3_read", clock=clock, whole_object=1000, clock_every=100)
    texts = ["line %05d" % n for n in range(3000)]
    put(s3, key_at("00.34", 1), batch(*texts), JSON_LINES)
    before, module = [], busy_nxlog(clock)
    while not before:  # until a call stopped inside the object; the process then dies
        delay, before = poll(first, module)
    assert delay == first.more_waiting_delay and len(before) < 3000
    first.stop()
    second = build("s3_read", whole_object=1000)
    assert before + read_all(second) == texts


def test_objects_fetched_at_the_same_time_are_posted_in_key_order(s3, settings, load):
    settings(FETCH_THREADS=8)
    for n in range(1, 41):
        put(s3, key_at("00.34", n), "e%02d" % n)
    assert read_all(load("s3_read")) == ["e%02d" % n for n in range(1, 41)]


def test_the_connection_pool_has_room_for_every_fetch_thread_and_the_caller(s3, settings,
                                                                          load):
    settings(FETCH_THREADS=16)
    assert load("s3_read").instance.client.meta.config.max_pool_connections == 17


# ---- Every kind of object ----

def test_a_batch_gives_one_event_per_line_with_its_fields(s3, reader):
    put(s3, key_at("00.34", 1), batch("one", "two", "three"), JSON_LINES)
    assert read_all(reader) == ["one", "two", "three"]


def test_the_old_scripts_pickles_are_read_only_when_allowed(s3, settings, load):
    put(s3, key_at("00.34", 1), pickle.dumps({"raw_event": "pickled"}, protocol=2))
    settings(ALLOW_PICKLE="true")
    assert read_all(load("s3_read")) == ["pickled"]


def test_the_old_scripts_pickles_are_refused_by_default(s3, settings, load):
    settings(MAX_ATTEMPTS=1)
    put(s3, key_at("00.34", 1), pickle.dumps({"raw_event": "pickled"}, protocol=2))
    assert read_all(load("s3_read")) == []
    assert "unpickling runs code" in api.logged("ERROR")[0]


def test_raw_lines_reads_objects_of_other_tools_as_one_event_per_line(s3, settings, load):
    settings(RAW_LINES="true")
    put(s3, key_at("00.34", 1), "first line\r\nsecond line\n")
    put(s3, key_at("00.34", 2), "ours, one event\nwith a newline", {"nxlog-s3-format": "raw"})
    assert read_all(load("s3_read")) == ["first line", "second line",
                                         "ours, one event\nwith a newline"]


# ---- Where reading starts, and what happens after ----

def test_start_at_now_skips_what_the_bucket_held(s3, settings, load):
    settings(START_AT="now")
    put(s3, key_at("00.34", 1), "old")
    reader = load("s3_read")
    assert read_all(reader) == []
    now = time.strftime("%Y-%m-%d/%H.%M.%S", time.gmtime(time.time() + 2))
    put(s3, "web01/%s.1" % now, "new")
    assert read_all(reader) == ["new"]


def test_after_read_delete_removes_each_object_read(s3, settings, load):
    settings(AFTER_READ="delete")
    put(s3, key_at("00.34", 1), "gone")
    assert read_all(load("s3_read")) == ["gone"]
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_a_checkpoint_of_the_first_version_is_taken_up(s3, settings, load, tmp_path):
    put(s3, key_at("00.34", 1), "read before")
    put(s3, key_at("00.34", 2), "not yet")
    (tmp_path / "lastkey.log").write_text(json.dumps({
        "version": 1, "bucket": BUCKET, "server": "web01",
        "group": "web01/2026-03-01/10.00.34.", "done": [1]}))
    assert read_all(load("s3_read")) == ["not yet"]


@pytest.mark.parametrize("values, message", [
    ({"AFTER_READ": "move"}, "AFTER_READ=move needs MOVE_PREFIX"),
    ({"AFTER_READ": "move", "MOVE_PREFIX": "web01/done/"}, "is inside a SERVER's own prefix"),
    ({"SERVER": "*", "AFTER_READ": "move", "MOVE_PREFIX": "web01/old/"},
     "with SERVER=\\*, every first segment of a key is a server"),
    ({"LOOKBACK": 600, "LATE_HORIZON": 300}, "LATE_HORIZON=300 is shorter than LOOKBACK=600"),
])
def test_settings_that_cannot_work_together_are_refused(s3, settings, load, values, message):
    module = load("s3_read")
    settings(**values)
    with pytest.raises(module.ConfigError, match=message):
        module.ReaderSettings.of_script(vars(module), module.__file__)


def slow_down(reader, operation, pauses, when=lambda params: True):
    """S3 answers the READER's OPERATION requests that WHEN picks PAUSES seconds late, one
    pause after the other, and the rest at once."""
    pauses = iter(pauses)

    def late(params, **kwargs):
        if when(params):
            time.sleep(next(pauses, 0))
    reader.instance.client.meta.events.register("provide-client-params.s3." + operation, late)


def poll_in_time(reader):
    """One poll, which ends before S3 answers (MAX_SECONDS_PER_CALL=0.2): NXLog has its turn
    meanwhile, and is asked to call again at once."""
    started = time.monotonic()
    delay, posted = poll(reader)
    assert time.monotonic() - started < 1.0
    assert (delay, posted) == (reader.instance.more_waiting_delay, [])


def test_a_slow_fetch_holds_no_call_past_its_time_and_the_next_calls_read_on(s3, settings,
                                                                             load):
    settings(MAX_SECONDS_PER_CALL=0.2, POLL_INTERVAL=5)
    put(s3, key_at("00.34", 1), batch("one", "two"), JSON_LINES)
    put(s3, key_at("00.34", 2), batch("three"), JSON_LINES)
    reader = load("s3_read")
    slow_down(reader, "GetObject", [1.5])
    poll_in_time(reader)
    assert read_all(reader) == ["one", "two", "three"]


def test_a_slow_list_page_holds_no_call_past_its_time_and_the_second_stays_in_order(
        s3, settings, load):
    settings(MAX_SECONDS_PER_CALL=0.2, MAXKEYS=2, POLL_INTERVAL=5)
    for counter in (1, 2, 10, 11, 3):  # S3 lists .1 .10 | .11 .2 | .3: a second over 3 pages
        put(s3, key_at("00.34", counter), "e%d" % counter)
    reader = load("s3_read")
    slow_down(reader, "ListObjectsV2", [0, 1.5])  # the second page comes 1.5 s late
    poll_in_time(reader)
    assert read_all(reader) == ["e1", "e2", "e3", "e10", "e11"]


def test_a_large_object_streaming_slowly_holds_no_call_past_its_time_and_loses_nothing(
        s3, settings, build, tmp_path):
    settings(MAX_SECONDS_PER_CALL=0.2, POLL_INTERVAL=5)
    texts = ["line %05d" % n for n in range(3000)]
    put(s3, key_at("00.34", 1), batch(*texts), JSON_LINES)
    reader = build("s3_read", whole_object=1000)  # this object streams as it is posted

    class Stalling(object):
        """A body whose second read comes 1.5 s late, as from a slow S3."""

        def __init__(self, body):
            self.body, self.reads = body, 0

        def read(self, size=-1):
            self.reads += 1
            if self.reads == 2:
                time.sleep(1.5)
            return self.body.read(min(size, 4096) if size and size > 0 else size)

        def close(self):
            self.body.close()

    def stall(parsed, **kwargs):
        parsed["Body"] = Stalling(parsed["Body"])
    reader.client.meta.events.register("after-call.s3.GetObject", stall)
    posted, slowest = [], 0.0
    for _ in range(200):
        started = time.monotonic()
        delay, events = poll(reader)
        slowest = max(slowest, time.monotonic() - started)
        posted += events
        if delay == reader.settings.POLL_INTERVAL:
            break
    assert slowest < 1.0  # no call waited out the stalled read
    assert posted == texts


def test_a_slow_listing_of_the_servers_holds_no_call_past_its_time(s3, settings, load):
    settings(SERVER="*", MAX_SECONDS_PER_CALL=0.2, POLL_INTERVAL=5)
    put(s3, key_at("00.34", 1), "from web01")
    put(s3, key_at("00.35", 1, server="web02"), "from web02")
    reader = load("s3_read")
    slow_down(reader, "ListObjectsV2", [1.5],  # the first listing of the servers
              when=lambda params: params.get("Delimiter") == "/")
    poll_in_time(reader)
    assert sorted(read_all(reader)) == ["from web01", "from web02"]
