"""s3_write.py under the stub, against moto's in-process S3."""

import base64
import gzip
import json
import pickle
import threading
import time

import boto3
import pytest

from helpers import BUCKET, RecordingClock, all_objects, drain, free_port, wait_for
from nxlog_stub import api


def event(**fields):
    return api.new_event(api.output_module("s3"), fields)


def write(writer, *events):
    """write_data for each event, as NXLog calls it; then waits until S3 has them all."""
    for one in events:
        assert api.call_write_data(writer.write_data, one), api.logged("ERROR")
    drain(writer)


@pytest.fixture
def writer(s3, settings, load):
    return load("s3_write")


@pytest.fixture
def in_time_zone(monkeypatch):
    """Runs the test with local time in ZONE (POSIX TZ), restoring it afterwards."""
    def switch(zone):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
    yield switch
    monkeypatch.undo()
    time.tzset()


def test_an_event_is_stored_under_server_date_time_and_counter_in_utc(s3, settings, load,
                                                                        in_time_zone):
    in_time_zone("IST-5:30")
    write(load("s3_write"), event(raw_event="hello", EventReceivedTime="2026-03-01 10:00:05"))
    assert list(all_objects(s3)) == ["web01/2026-03-01/04.30.05.1"]


def test_key_time_local_keeps_the_local_time_as_the_old_scripts_did(s3, settings, load,
                                                                     in_time_zone):
    in_time_zone("IST-5:30")
    settings(KEY_TIME="local")
    write(load("s3_write"), event(raw_event="hello", EventReceivedTime="2026-03-01 10:00:05"))
    assert list(all_objects(s3)) == ["web01/2026-03-01/10.00.05.1"]


@pytest.mark.parametrize("received", [None, "yesterday", "2026-13-45 99:00:00", 12345])
def test_a_missing_or_unparsable_time_uses_the_current_time(s3, writer, received, in_time_zone):
    in_time_zone("UTC0")
    before = time.strftime("%Y-%m-%d/%H.%M.%S", time.gmtime())
    fields = {"raw_event": "x"}
    if received is not None:
        fields["EventReceivedTime"] = received
    write(writer, event(**fields))
    after = time.strftime("%Y-%m-%d/%H.%M.%S", time.gmtime())
    [key] = all_objects(s3)
    assert before <= key[len("web01/"):].rsplit(".", 1)[0] <= after


def at(second, text):
    return event(raw_event=text, EventReceivedTime="2026-03-01 10:00:%02d" % second)


def test_counters_count_objects_of_the_same_second_from_1(s3, writer, in_time_zone):
    in_time_zone("UTC0")
    write(writer, *[at(34, "e%d" % n) for n in range(12)])
    keys = sorted(all_objects(s3), key=lambda key: int(key.rsplit(".", 1)[1]))
    assert keys == ["web01/2026-03-01/10.00.34.%d" % n for n in range(1, 13)]


def test_an_event_older_than_the_last_key_goes_after_it_keys_never_go_back(s3, writer,
                                                                           in_time_zone):
    """A reader reads keys in order: a key behind one it read could be behind its window."""
    in_time_zone("UTC0")
    write(writer, at(34, "first"), at(35, "second"), at(34, "third"), at(36, "fourth"))
    objects = all_objects(s3)
    assert {key: value["Data"] for key, value in objects.items()} == {
        "web01/2026-03-01/10.00.34.1": b"first",
        "web01/2026-03-01/10.00.35.1": b"second",
        "web01/2026-03-01/10.00.35.2": b"third",
        "web01/2026-03-01/10.00.36.1": b"fourth"}


def bodies(client):
    return {key: value["Data"] for key, value in all_objects(client).items()}


def test_a_restart_in_the_same_second_overwrites_nothing(s3, settings, load, in_time_zone):
    in_time_zone("UTC0")
    first = load("s3_write")
    write(first, at(7, "before restart 1"), at(7, "before restart 2"))
    first.stop()
    write(load("s3_write"), at(7, "after restart"))  # a new instance: its counters start empty
    assert bodies(s3) == {"web01/2026-03-01/10.00.07.1": b"before restart 1",
                          "web01/2026-03-01/10.00.07.2": b"before restart 2",
                          "web01/2026-03-01/10.00.07.3": b"after restart"}


def test_two_writers_with_one_server_name_overwrite_nothing(s3, settings, load, in_time_zone):
    in_time_zone("UTC0")
    settings(SPOOL_DIR="first.spool")
    first = load("s3_write")
    settings(SPOOL_DIR="second.spool")
    second = load("s3_write")
    write(first, at(9, "a1"))
    write(second, at(9, "b1"))
    write(first, at(9, "a2"))
    write(second, at(9, "b2"))
    stored = bodies(s3)
    assert sorted(stored.values()) == [b"a1", b"a2", b"b1", b"b2"]
    assert sorted(stored) == ["web01/2026-03-01/10.00.09.%d" % n for n in range(1, 5)]


def test_every_put_is_conditional(s3, writer):
    seen = []
    writer.instance.client.meta.events.register(
        "before-call.s3.PutObject", lambda params, **kwargs: seen.append(params["headers"]))
    write(writer, event(raw_event="x"))
    assert seen[0]["If-None-Match"] == "*"


def test_one_client_checks_the_bucket_at_start_and_one_serves_every_upload(s3, settings,
                                                                           load, monkeypatch):
    created = []
    original = boto3.session.Session.client

    def counting_client(self, *args, **kwargs):
        created.append(args)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(boto3.session.Session, "client", counting_client)
    writer = load("s3_write")
    assert created == [("s3",), ("s3",)]
    write(writer, *[event(raw_event="e%d" % n) for n in range(5)])
    drain(writer)
    assert created == [("s3",), ("s3",)]


def test_retries_and_timeouts_are_set_through_botocore_config(s3, settings, load):
    settings(RETRY_MODE="adaptive", RETRY_ATTEMPTS=7, CONNECT_TIMEOUT=3, READ_TIMEOUT=4.5)
    config = load("s3_write").instance.client.meta.config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert (config.connect_timeout, config.read_timeout) == (3.0, 4.5)


def test_the_connection_pool_has_room_for_every_upload_thread(s3, settings, load):
    settings(UPLOAD_THREADS=16)
    assert load("s3_write").instance.client.meta.config.max_pool_connections == 16


def test_a_slow_upload_does_not_hold_back_the_objects_after_it(s3, settings, load):
    settings(UPLOAD_THREADS=2)
    writer = load("s3_write")
    others_landed = threading.Event()

    def slow_first(params, **kwargs):
        if params["Body"] == b"first":
            others_landed.wait(15)
    writer.instance.client.meta.events.register("provide-client-params.s3.PutObject", slow_first)
    for text in ("first", "second", "third"):
        assert api.call_write_data(writer.write_data, event(raw_event=text))
    wait_for(lambda: len(all_objects(s3)) == 2, what="the later objects")
    others_landed.set()
    drain(writer)
    assert sorted(bodies(s3).values()) == [b"first", b"second", b"third"]
    assert api.logged("ERROR") == []


def test_with_one_upload_thread_objects_land_in_key_order(s3, settings, load):
    settings(UPLOAD_THREADS=1)
    writer = load("s3_write")
    landed = []
    writer.instance.client.meta.events.register("provide-client-params.s3.PutObject",
                                      lambda params, **kwargs: landed.append(params["Body"]))
    write(writer, *[event(raw_event="e%d" % n) for n in range(6)])
    assert landed == [b"e%d" % n for n in range(6)]


def test_raw_is_the_default_format_stored_as_utf8_text(s3, writer):
    write(writer, event(raw_event="caf\u00e9 \u2603", other="not stored"))
    [stored] = all_objects(s3).values()
    assert stored["Data"] == "caf\u00e9 \u2603".encode()
    assert stored["ContentType"] == "text/plain; charset=utf-8"
    assert stored["Metadata"]["nxlog-s3-format"] == "raw"
    assert stored["Metadata"]["nxlog-s3-compression"] == "none"
    assert stored["Metadata"]["nxlog-s3-events"] == "1"
    assert "ContentEncoding" not in stored


def test_json_stores_every_field_with_binary_fields_as_base64(s3, settings, load):
    settings(FORMAT="json")
    write(load("s3_write"), event(raw_event="x", Severity=3, Flag=True,
                                  Payload=memoryview(b"\x00\xff")))
    [stored] = all_objects(s3).values()
    assert json.loads(stored["Data"]) == {"raw_event": "x", "Severity": 3, "Flag": True,
                                          "Payload": base64.b64encode(b"\x00\xff").decode()}
    assert stored["ContentType"] == "application/json"
    assert stored["Metadata"]["nxlog-s3-format"] == "json"


def test_gzip_compresses_the_body_and_says_so(s3, settings, load):
    settings(FORMAT="json", COMPRESSION="gzip")
    write(load("s3_write"), event(raw_event="x" * 1000))
    [stored] = all_objects(s3).values()
    assert stored["ContentEncoding"] == "gzip"
    assert (stored["Metadata"]["nxlog-s3-format"], stored["Metadata"]["nxlog-s3-compression"]) \
        == ("json", "gzip")
    assert json.loads(gzip.decompress(stored["Data"])) == {"raw_event": "x" * 1000}
    assert len(stored["Data"]) < 100


def test_json_is_json_dumps_with_or_without_the_c_accelerator(writer, monkeypatch):
    fields = {"raw_event": "caf\u00e9 \u2028 \x00 \" \\ \ud800", "count": 5, "ratio": 1.5,
              "none": None, "yes": True, "binary": memoryview(b"\x00\xff")}
    expected = json.dumps(fields, default=writer.json_value, separators=(",", ":"))
    assert writer.instance.encoder.json_text(fields) == expected
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    assert "".join(writer._json_encoder()(fields, 0)) == expected


def test_pickle_stores_every_field_for_old_consumers(s3, settings, load):
    settings(FORMAT="pickle")
    write(load("s3_write"), event(raw_event="x", Payload=memoryview(b"\x01")))
    [stored] = all_objects(s3).values()
    assert pickle.loads(stored["Data"]) == {"raw_event": "x", "Payload": b"\x01"}
    assert stored["ContentType"] == "application/x-python-pickle"


def test_raw_format_keeps_an_event_without_raw_event_as_json(s3, writer):
    write(writer, event(Message="no raw_event here"))
    [stored] = all_objects(s3).values()
    assert stored["Metadata"]["nxlog-s3-format"] == "json"
    assert json.loads(stored["Data"]) == {"Message": "no raw_event here"}
    assert "stored as json" in api.logged("WARNING")[0]


def test_the_legacy_api_names_work_too(s3, settings, load):
    api.set_flavour(api.LEGACY)
    settings(FORMAT="json")
    write(load("s3_write"), event(raw_event="old", n=1))
    [stored] = all_objects(s3).values()
    assert json.loads(stored["Data"]) == {"raw_event": "old", "n": 1}


def test_a_bucket_gone_after_start_is_reported_by_key_and_reason_and_the_event_waits(
        load_then_lose_bucket):
    writer = load_then_lose_bucket("s3_write", "no-such-bucket")
    assert api.call_write_data(writer.write_data, event(
        raw_event="x", EventReceivedTime="2026-03-01 10:00:05"))
    wait_for(lambda: api.logged("ERROR"), what="an error about the missing bucket")
    [message] = api.logged("ERROR")
    assert "cannot store 's3://no-such-bucket/web01/2026-03-01/10.00.05.1' (1 event) now" \
        in message
    assert "NoSuchBucket" in message and "the events wait in the spool" in message
    assert writer.instance.spool.pending() == 1


def test_a_failing_upload_backs_off_on_its_clock_and_is_logged_once_a_minute(
        s3, settings, load, build):
    """Ten failed uploads in a row, on a clock that moves only as the writer sleeps: the
    back-off grows to 30 s, and the error is logged once a minute, the retries between
    counted, not logged."""
    settings(BUCKET="short-lived", UPLOAD_THREADS=1)
    s3.create_bucket(Bucket="short-lived")
    clock = RecordingClock(limit=9)
    writer = build(load("s3_write"), clock=clock)
    s3.delete_bucket(Bucket="short-lived")
    assert api.call_write_data(writer.write_data, event(raw_event="x"))
    wait_for(clock.held.is_set, what="ten failed uploads")  # the tenth's sleep holds it
    assert clock.slept == [0.5, 1, 2, 4, 8, 15, 30, 30, 30]
    first, second, third = api.logged("ERROR")  # attempts at 0, 60.5 and 120.5 s
    assert all("NoSuchBucket" in message for message in (first, second, third))
    assert second.endswith("(6 times since the last such message)")
    assert third.endswith("(1 time since the last such message)")


def test_uploads_resume_by_themselves_once_the_bucket_exists_again(s3,
                                                                    load_then_lose_bucket):
    writer = load_then_lose_bucket("s3_write", "late-bucket")
    assert api.call_write_data(writer.write_data, event(raw_event="waited"))
    wait_for(lambda: api.logged("ERROR"), what="an error about the missing bucket")
    s3.create_bucket(Bucket="late-bucket")
    drain(writer)
    [key] = [item["Key"] for item in s3.list_objects_v2(Bucket="late-bucket")["Contents"]]
    assert s3.get_object(Bucket="late-bucket", Key=key)["Body"].read() == b"waited"


def test_an_unreachable_endpoint_is_reported_without_the_credentials(settings, load,
                                                                      monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:%d" % free_port())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "planted-secret-value")
    settings(RETRY_ATTEMPTS=1, CONNECT_TIMEOUT=0.5)
    writer = load("s3_write")
    assert api.call_write_data(writer.write_data, event(raw_event="x"))
    wait_for(lambda: len(api.logged("WARNING")) == 2, what="a warning about the upload")
    [at_start, message] = api.logged("WARNING")
    assert "S3 does not answer yet (Could not connect to the endpoint URL" in at_start
    assert "cannot store 's3://%s/web01/" % BUCKET in message
    assert "Could not connect to the endpoint URL" in message
    assert all("planted-secret-value" not in text for _, text in api.LOGS)
    assert writer.instance.spool.pending() == 1


@pytest.mark.parametrize("version", ["1.29.27", "1.35.15"])
def test_a_botocore_without_conditional_writes_is_refused_at_start(writer, version):
    with pytest.raises(writer.ConfigError, match="botocore %s cannot write objects "
                                                 "conditionally" % version):
        writer._check_botocore(version)


def test_a_botocore_with_conditional_writes_is_accepted(writer):
    for version in ("1.35.16", "1.44.8", "2.0.0"):
        writer._check_botocore(version)


def test_an_empty_server_name_means_this_host(s3, settings, load, monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "myhost.example.com")
    settings(SERVER="")
    write(load("s3_write"), event(raw_event="x"))
    [key] = all_objects(s3)
    assert key.startswith("myhost/")
