"""COORDINATION=s3: readers sharing a bucket's servers through leases and positions kept in
the bucket, under the stub, against moto's in-process S3 (which honors conditional writes).

Each reader has a SteppedClock: its turns (a beat, a look at the others) come on its
monotonic clock, so the tests step it rather than wait. Whether a reader is gone is S3's
word (its clock, LastModified and Date), so a takeover waits LEASE_SECONDS for real."""

import json
import math
import time

import pytest
from botocore.exceptions import EndpointConnectionError

from helpers import (
    BUCKET,
    JSON_LINES,
    SteppedClock,
    all_objects,
    batch,
    poll,
    put,
    script_command,
)
from nxlog_stub import api

SERVERS = ["srv%02d" % number for number in range(12)]
LEASE = 6
STATE = "_nxlog-s3/"


def fill(s3, servers, objects=2, events=3, first=0):
    """OBJECTS batches of EVENTS events for each of SERVERS; each event's text names its
    server, object and place: 'srv03 1 2'."""
    for server in servers:
        for number in range(first, first + objects):
            put(s3, "%s/2026-03-01/10.00.%02d.1.jsonl.gz" % (server, number), batch(
                *["%s %d %d" % (server, number, place) for place in range(events)]),
                JSON_LINES)


def expected(servers, objects=2, events=3, first=0):
    return ["%s %d %d" % (server, number, place) for server in servers
            for number in range(first, first + objects) for place in range(events)]


@pytest.fixture
def shared(s3, settings, load, build):
    """shared('a', 'b'): readers of those READER_NAMEs sharing the bucket (SERVER=*), each
    with a SteppedClock of its own (reader.clock)."""
    settings(COORDINATION="s3", SERVER="*", LEASE_SECONDS=LEASE, POLL_INTERVAL=1)

    def start(*names, **more):
        settings(**more)
        readers = []
        for name in names:
            settings(READER_NAME=name)
            readers.append(build("s3_read", clock=SteppedClock()))
        return readers
    return start


def turn(readers, posted, step=1.0):
    """One read_data call of each reader (events appended to POSTED[reader's id]), then
    every clock stepped on to the next turn. Returns how many events were posted."""
    count = 0
    for reader in readers:
        _, events = poll(reader)
        posted.setdefault(reader.checkpoint.id, []).extend(events)
        count += len(events)
    for reader in readers:
        reader.clock.step(step)
    return count


def settle(readers, posted, turns=8):
    for _ in range(turns):
        turn(readers, posted)


def held(reader):
    return sorted(reader.checkpoint.held)


def test_three_readers_share_twelve_servers_and_post_every_event_once_in_order(s3, shared):
    fill(s3, SERVERS)
    readers = shared("a", "b", "c")
    posted = {}
    settle(readers, posted)
    holdings = [held(reader) for reader in readers]
    assert sorted(sum(holdings, [])) == SERVERS  # each server held by one reader
    assert [len(each) for each in holdings] == [4, 4, 4]
    every = sum(posted.values(), [])
    assert sorted(every) == sorted(expected(SERVERS))  # every event, once
    for events in posted.values():  # in order per server
        for server in SERVERS:
            mine = [event for event in events if event.startswith(server + " ")]
            assert mine == [event for event in expected([server]) if event in mine]


def test_a_reader_that_joins_gets_its_share_and_one_that_stops_hands_its_share_on(
        s3, shared):
    fill(s3, SERVERS, objects=1)
    readers = shared("a", "b", "c")
    posted = {}
    settle(readers, posted)
    readers += shared("d")
    settle(readers, posted)
    assert [len(held(reader)) for reader in readers] == [3, 3, 3, 3]
    readers[0].stop()
    assert readers[0].checkpoint.held == {}
    fill(s3, SERVERS, objects=1, first=1)
    settle(readers[1:], posted)
    holdings = [held(reader) for reader in readers[1:]]
    assert sorted(sum(holdings, [])) == SERVERS
    assert max(len(each) for each in holdings) <= math.ceil(12 / 3) + 1
    every = sum(posted.values(), [])
    assert sorted(every) == sorted(expected(SERVERS, objects=2))


def test_a_reader_gone_without_a_stop_is_taken_over_after_its_lease_where_it_stopped(
        s3, shared):
    fill(s3, ["web01"], objects=3)
    first, second = shared("a", "b")
    posted = {}
    turn([first], posted)
    assert held(first) == ["web01"] and posted[first.checkpoint.id] == \
        expected(["web01"], objects=3)
    fill(s3, ["web01"], objects=2, first=3)
    turn([second], posted)
    assert held(second) == [] and posted[second.checkpoint.id] == []  # a holds it, alive
    time.sleep(LEASE + 1.5)  # `a` is gone (never called again): S3 sees its beat age
    settle([second], posted, turns=2)
    assert held(second) == ["web01"]
    assert posted[second.checkpoint.id] == expected(["web01"], objects=2, first=3)
    assert second.checkpoint.takeovers == 1
    assert any("takes over web01 from %s, whose lease ran out" % first.checkpoint.id in line
               for line in api.logged("INFO"))


def test_a_reader_that_lost_its_server_cannot_save_over_the_new_holders_position(s3, shared):
    fill(s3, ["web01"], objects=1)
    [reader] = shared("a")
    posted = {}
    turn([reader], posted)
    key = STATE + "servers/web01.json"
    state = json.loads(all_objects(s3, key)[key]["Data"])
    s3.put_object(Bucket=BUCKET, Key=STATE + "readers/b@another", Body=b"{}")  # b is alive
    state.update(holder="b@another", written=state["written"] + 1)  # and took it over
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(state).encode())
    fill(s3, ["web01"], objects=2, first=1)
    turn([reader], posted)
    # it posted the object in progress (a duplicate at most), then its save got 412
    assert posted[reader.checkpoint.id] == expected(["web01"], objects=2)
    assert json.loads(all_objects(s3, key)[key]["Data"]) == state  # b's, untouched
    assert held(reader) == []
    assert any("another reader took over web01" in line for line in api.logged("WARNING"))
    turn([reader], posted)
    assert posted[reader.checkpoint.id] == expected(["web01"], objects=2)  # nothing more


def test_a_reader_whose_beats_fail_posts_nothing_once_its_lease_ran_out_by_its_own_clock(
        s3, shared):
    fill(s3, ["web01"], objects=1)
    [reader] = shared("a")
    posted = {}
    turn([reader], posted)

    def no_beat(params, **kwargs):
        if params["Key"].startswith(STATE + "readers/"):
            raise ConnectionResetError("the network to S3 is cut")
    reader.checkpoint.objects.client.meta.events.register("before-parameter-build.s3."
                                                          "PutObject", no_beat)
    fill(s3, ["web01"], objects=1, first=1)
    reader.clock.step(LEASE)  # its lease ran out by its own clock: no beat could renew it
    turn([reader], posted)
    assert posted[reader.checkpoint.id] == expected(["web01"], objects=1)
    assert any("its lease ran out" in line for line in api.logged("WARNING"))
    assert held(reader) == []


def test_a_store_that_ignores_conditional_writes_is_refused_at_start(s3, settings, build):
    settings(COORDINATION="s3")

    def ignore_conditions(params, **kwargs):
        params.pop("IfNoneMatch", None)
        params.pop("IfMatch", None)
    s3.meta.events.register("before-parameter-build.s3.PutObject", ignore_conditions)
    with pytest.raises(Exception) as refused:
        build("s3_read", client=s3)
    assert type(refused.value).__name__ == "ConfigError"
    assert "COORDINATION=s3 needs a store that honors S3's conditional writes, and " \
        "s3://%s/ does not (a second create of s3://%s/_nxlog-s3/probe/" % (BUCKET, BUCKET) \
        in str(refused.value)
    assert not [key for key in all_objects(s3) if key.startswith(STATE + "probe/")]


def test_a_broken_state_object_is_named_and_the_other_servers_are_read(s3, shared):
    fill(s3, ["web01", "web02"], objects=1)
    s3.put_object(Bucket=BUCKET, Key=STATE + "servers/web01.json", Body=b"{not json")
    [reader] = shared("a")
    posted = {}
    turn([reader], posted)
    assert posted[reader.checkpoint.id] == expected(["web02"], objects=1)
    [error] = [line for line in api.logged("ERROR") if "web01" in line]
    assert "the state of web01, 's3://%s/_nxlog-s3/servers/web01.json', is broken" % BUCKET \
        in error and "no reader reads web01 until it is fixed" in error


def test_the_state_prefix_is_no_server_to_a_reader_of_every_server(s3, settings, load):
    settings(SERVER="*", POLL_INTERVAL=5)
    fill(s3, ["web01"], objects=1)
    s3.put_object(Bucket=BUCKET, Key=STATE + "servers/web01.json", Body=b"{}")
    reader = load("s3_read")
    assert poll(reader)[1] == expected(["web01"], objects=1)
    assert not [line for line in api.logged("WARNING") if STATE in line]


def test_positions_and_metrics_say_what_each_reader_holds(s3, shared):
    fill(s3, SERVERS[:4], objects=1)
    readers = shared("a", "b")
    settle(readers, {})
    for reader in readers:
        samples = {sample[0]: sample[4] for sample in reader.samples()}
        assert samples["nxlog_s3_reader_leases_held"] == 2
        assert samples["nxlog_s3_reader_readers_alive"] == 2
        assert samples["nxlog_s3_reader_takeovers_total"] == 0
    key = STATE + "servers/%s.json" % held(readers[0])[0]
    state = json.loads(all_objects(s3, key)[key]["Data"])
    assert state["holder"] == readers[0].checkpoint.id
    assert state["position"]["newest"] == "2026-03-01/10.00.00"


def test_a_checkpoint_file_with_coordination_s3_is_refused(settings, start_refused):
    settings(COORDINATION="s3", CHECKPOINT="/tmp/lastkey.log")
    [line] = start_refused("s3_read")
    assert "CHECKPOINT='/tmp/lastkey.log' has no use with COORDINATION=s3" in line


@pytest.mark.ceph
def test_radosgw_which_refuses_if_match_with_the_right_etag_is_refused_at_start(
        ceph, settings, monkeypatch, start_refused):
    for name, value in ceph.env.items():
        monkeypatch.setenv(name, value)
    bucket = ceph.new_bucket("nxlog-shared")
    settings(COORDINATION="s3", BUCKET=bucket)
    [line] = start_refused("s3_read", endpoint=ceph.url)
    assert "COORDINATION=s3 needs a store that honors S3's conditional writes, and s3://%s/ " \
        "does not (a write with If-Match and the object's own ETag was refused with 412)" \
        % bucket in line
    assert [item["Key"] for item in ceph.client().list_objects_v2(Bucket=bucket).get(
        "Contents", ())] == []


def test_status_shows_each_servers_holder_and_position_and_check_leaves_nothing_behind(
        moto_server, tmp_path, monkeypatch, settings, load):
    bucket = moto_server.new_bucket("nxlog-shared")
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    settings(BUCKET=bucket, COORDINATION="s3", SERVER="*", READER_NAME="reader1")
    client = moto_server.client()
    put(client, "web01/2026-03-01/10.00.00.1.jsonl.gz", batch("one"), JSON_LINES,
        bucket=bucket)
    reader = load("s3_read")
    assert poll(reader)[1] == ["one"]
    command = script_command(moto_server, bucket, tmp_path)
    env = {"NXLOG_S3_COORDINATION": "s3", "NXLOG_S3_SERVER": "*"}
    status, out, err = command("s3_read", "status", "--json", env=env)
    assert (status, err) == (0, [])
    shown = json.loads(out[0])
    assert shown["in_use"] is True
    [server] = shown["servers"]
    assert server["newest_read"] == "2026-03-01T10:00:00Z"
    assert server["lease"]["holder"] == reader.instance.checkpoint.id
    assert server["lease"]["alive"] is True
    status, out, _ = command("s3_read", "status", env=env)
    assert out[2].startswith("  held by %s (its last beat " % reader.instance.checkpoint.id)
    status, out, err = command("s3_read", "check", env=env)
    assert status == 0, err
    reader.stop()  # its server handed on, its beat deleted
    status, out, _ = command("s3_read", "status", env=env)
    assert out[2].startswith("  free (handed on), position saved at ")
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == ["_nxlog-s3/servers/web01.json",
                            "web01/2026-03-01/10.00.00.1.jsonl.gz"]


def test_a_stop_with_s3_gone_tries_once_and_leaves_the_servers_to_the_lease(s3, shared):
    fill(s3, SERVERS[:5], objects=1)
    [reader] = shared("a")
    turn([reader], {})
    assert len(held(reader)) == 5
    tries = []

    def gone(**_):
        tries.append(1)
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    s3.meta.events.register("before-call.s3.PutObject", gone)
    reader.checkpoint.objects.client.meta.events.register("before-call.s3.PutObject", gone)
    reader.stop()
    assert len(tries) == 1  # one try, not one per server: NXLog's stop waits on none
    assert any("cannot hand on its servers at the stop" in line and "within %d s" % LEASE
               in line for line in api.logged("WARNING"))


def test_a_reader_whose_beat_was_deleted_lets_its_servers_go_and_beats_anew(s3, shared):
    fill(s3, ["web01"], objects=1)
    [reader] = shared("a")
    posted = {}
    turn([reader], posted)
    assert held(reader) == ["web01"]
    s3.delete_object(Bucket=BUCKET, Key=STATE + "readers/" + reader.checkpoint.id)
    reader.clock.step(LEASE)  # its next turn: the beat's If-Match finds nothing
    turn([reader], posted)
    assert any("its beat " in line and "was deleted or changed by another" in line
               for line in api.logged("WARNING"))
    assert STATE + "readers/" + reader.checkpoint.id in all_objects(s3, STATE + "readers/")
    settle([reader], posted, turns=2)
    assert held(reader) == ["web01"]  # taken up again, nothing read twice
    assert posted[reader.checkpoint.id] == expected(["web01"], objects=1)


def test_planted_state_objects_are_named_or_passed_over_and_never_read_whole(s3, shared,
                                                                             monkeypatch):
    fill(s3, ["web01"], objects=1)
    s3.put_object(Bucket=BUCKET, Key=STATE + "servers/web01.json", Body=b" " * 2048)
    s3.put_object(Bucket=BUCKET, Key=STATE + "servers/evil\nline.json", Body=b"{}")
    [reader] = shared("a")
    script = reader.checkpoint.objects.get.__func__.__globals__  # the generated script's
    monkeypatch.setitem(script, "MAX_STATE_BYTES", 1024)
    posted = {}
    turn([reader], posted)
    assert posted[reader.checkpoint.id] == []
    [error] = [line for line in api.logged("ERROR") if "web01" in line]
    assert "is larger than 1024 bytes: no reader wrote it" in error
    assert script["server_of_state"](STATE + "servers/evil\nline.json") is None
    assert script["server_of_state"](STATE + "servers/web01.json") == "web01"


def test_readers_sharing_a_bucket_that_deletes_what_it_read_post_every_event_once(
        s3, shared, settings):
    settings(AFTER_READ="delete")
    fill(s3, SERVERS[:6], objects=2)
    readers = shared("a", "b")
    posted = {}
    settle(readers, posted)
    fill(s3, SERVERS[:6], objects=1, first=2)  # news under prefixes emptied by the deletes
    settle(readers, posted)
    every = sum(posted.values(), [])
    assert sorted(every) == sorted(expected(SERVERS[:6], objects=3))
    assert [key for key in all_objects(s3) if not key.startswith(STATE)] == []
    assert sorted(sum((held(reader) for reader in readers), [])) == SERVERS[:6]
