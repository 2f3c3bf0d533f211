"""s3_write.py's durable path: batches, the disk spool, exactly-once uploads, a full spool,
and the object options. Against moto's in-process S3."""

import errno
import gzip
import json
import os
import stat
import time

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from helpers import (
    BUCKET,
    all_objects,
    drain,
    filling_disk,
    key_counter,
    wait_for,
)
from nxlog_stub import api


def event(text, received="2026-03-01 10:00:05", **fields):
    return api.new_event(api.output_module("s3"), dict(
        fields, raw_event=text, EventReceivedTime=received))


def send(writer, *events):
    for one in events:
        assert api.call_write_data(writer.write_data, one), api.logged("ERROR")


def lines_of(stored):
    body = stored["Data"]
    if stored.get("ContentEncoding") == "gzip":
        body = gzip.decompress(body)
    return [json.loads(line)["raw_event"] for line in body.splitlines()]


def spool_files(path="s3_write.spool"):
    return sorted(name for name in os.listdir(path) if not name.startswith("."))


@pytest.fixture
def batching(settings):
    settings(BATCH_EVENTS=10, BATCH_AGE=3600)
    return settings


# ---- Batches ----

def test_a_batch_closes_at_batch_events_as_gzipped_json_lines(s3, batching, load):
    writer = load("s3_write")
    send(writer, *[event("e%02d" % n) for n in range(25)])
    wait_for(lambda: len(all_objects(s3)) == 2, what="two full batches in S3")
    objects = all_objects(s3)
    assert [lines_of(stored) for stored in objects.values()] == [
        ["e%02d" % n for n in range(10)], ["e%02d" % n for n in range(10, 20)]]
    first = objects["web01/2026-03-01/10.00.05.1.jsonl.gz"]
    assert first["ContentType"] == "application/x-ndjson"
    assert first["ContentEncoding"] == "gzip"
    assert first["Metadata"]["nxlog-s3-format"] == "jsonl"
    assert first["Metadata"]["nxlog-s3-events"] == "10"
    assert first["Metadata"]["nxlog-s3-version"] == "1"
    assert writer.instance.spool.pending() == 5  # the open batch waits for its age or its size


def test_a_batch_closes_at_batch_bytes(s3, batching, load):
    batching(BATCH_BYTES=300)
    writer = load("s3_write")
    send(writer, *[event("x" * 100) for _ in range(4)])  # about 150 bytes per JSON line
    drain(writer)
    assert sorted(int(stored["Metadata"]["nxlog-s3-events"])
                  for stored in all_objects(s3).values()) == [2, 2]


def test_a_batch_is_named_after_its_first_event_and_records_first_and_last(s3, batching, load,
                                                                          monkeypatch):
    monkeypatch.setenv("TZ", "UTC0")
    time.tzset()
    try:
        batching(BATCH_EVENTS=3)
        writer = load("s3_write")
        send(writer, event("a", "2026-03-01 10:00:05"), event("b", "2026-03-01 10:00:07"),
             event("c", "2026-03-01 10:00:09"))
        drain(writer)
    finally:
        monkeypatch.undo()
        time.tzset()
    [(key, stored)] = all_objects(s3).items()
    assert key == "web01/2026-03-01/10.00.05.1.jsonl.gz"
    assert (stored["Metadata"]["nxlog-s3-first"], stored["Metadata"]["nxlog-s3-last"]) == (
        "2026-03-01T10:00:05Z", "2026-03-01T10:00:09Z")


def test_the_age_limit_closes_a_batch_with_no_further_event(s3, batching, load):
    batching(BATCH_AGE=0.5)
    writer = load("s3_write")
    sent = time.monotonic()
    send(writer, event("alone"))
    wait_for(lambda: all_objects(s3), seconds=2.5, what="the lone batch in S3")
    assert time.monotonic() - sent < 0.5 + 2
    assert [lines_of(stored) for stored in all_objects(s3).values()] == [["alone"]]


def test_zstd_batches_when_asked_and_installed(s3, batching, load):
    zstandard = pytest.importorskip("zstandard")
    batching(COMPRESSION="zstd", BATCH_EVENTS=2)
    writer = load("s3_write")
    send(writer, event("z1"), event("z2"))
    drain(writer)
    [stored] = all_objects(s3).values()
    assert stored["ContentEncoding"] == "zstd"
    body = zstandard.ZstdDecompressor().decompressobj().decompress(stored["Data"])
    assert [json.loads(line)["raw_event"] for line in body.splitlines()] == ["z1", "z2"]


# ---- The spool ----

def test_write_data_returns_once_the_event_is_on_disk(s3, batching, load):
    writer = load("s3_write")
    send(writer, event("on disk"))
    [name] = spool_files()
    assert name.endswith(".jsonl.open")
    with open(os.path.join("s3_write.spool", name), "rb") as handle:
        assert json.loads(handle.read())["raw_event"] == "on disk"
    assert all_objects(s3) == {}


def test_spool_files_are_readable_by_their_owner_only(s3, batching, load):
    writer = load("s3_write")
    send(writer, *[event("e%d" % n) for n in range(12)])
    writer.stop()
    assert stat.S_IMODE(os.stat("s3_write.spool").st_mode) == 0o700
    for name in os.listdir("s3_write.spool"):
        mode = stat.S_IMODE(os.stat(os.path.join("s3_write.spool", name)).st_mode)
        assert mode == 0o600, name


def test_what_an_earlier_run_left_is_uploaded_first_at_start(s3, batching, load):
    earlier = load("s3_write")
    send(earlier, *[event("left %d" % n) for n in range(5)])  # an open batch of 5
    earlier.stop()  # the process ends: no hook, no flush
    later = load("s3_write")
    send(later, *[event("new %d" % n) for n in range(10)])
    drain(later)
    assert [lines_of(stored) for _, stored in sorted(
        all_objects(s3).items(), key=lambda item: key_counter(item[0]))] == [
        ["left %d" % n for n in range(5)], ["new %d" % n for n in range(10)]]
    assert "1 batch (5 events) left by an earlier run is uploaded first" in \
        api.logged("INFO")[-2]


def test_a_torn_last_line_is_cut_and_the_rest_uploaded(s3, batching, load):
    earlier = load("s3_write")
    send(earlier, event("whole 1"), event("whole 2"))
    earlier.stop()
    [name] = spool_files()
    with open(os.path.join("s3_write.spool", name), "ab") as handle:
        handle.write(b'{"raw_event":"tor')  # the process died inside write()
    drain(load("s3_write"))
    assert [lines_of(stored) for stored in all_objects(s3).values()] == [["whole 1", "whole 2"]]


def test_a_crash_between_manifest_and_rename_loses_nothing(s3, batching, load):
    batching(BATCH_EVENTS=2)
    earlier = load("s3_write")
    earlier.instance.spool.remove = lambda batch: None  # keep the closed batch in the spool
    earlier.instance.stopping.set()  # and upload nothing
    send(earlier, event("a"), event("b"))
    earlier.stop()
    [data, manifest] = spool_files()
    seq, epoch = manifest[:-5], json.load(open(os.path.join("s3_write.spool", manifest)))["epoch"]
    os.rename(os.path.join("s3_write.spool", data),
              os.path.join("s3_write.spool", "%s-%d.jsonl.open" % (seq, epoch)))
    drain(load("s3_write"))
    assert [lines_of(stored) for stored in all_objects(s3).values()] == [["a", "b"]]


def test_an_upload_that_landed_before_a_crash_is_not_stored_twice(s3, load, load_then_lose_bucket):
    earlier = load_then_lose_bucket("s3_write", "created-later")
    send(earlier, event("once"))
    wait_for(lambda: api.logged("ERROR"), what="a failed upload")  # the key is chosen by now
    earlier.stop()
    manifest = json.load(open(os.path.join("s3_write.spool", spool_files()[1])))
    s3.create_bucket(Bucket="created-later")
    # The upload had landed, but its answer never reached the writer:
    s3.put_object(Bucket="created-later", Key=manifest["key"], Body=b"once",
                  Metadata={"nxlog-s3-batch": manifest["id"]})
    drain(load("s3_write"))
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="created-later")["Contents"]]
    assert keys == [manifest["key"]]


def test_a_key_taken_by_someone_else_moves_to_the_next_counter(s3, load, load_then_lose_bucket):
    earlier = load_then_lose_bucket("s3_write", "created-later")
    send(earlier, event("mine"))
    wait_for(lambda: api.logged("ERROR"), what="a failed upload")
    earlier.stop()
    manifest = json.load(open(os.path.join("s3_write.spool", spool_files()[1])))
    s3.create_bucket(Bucket="created-later")
    s3.put_object(Bucket="created-later", Key=manifest["key"], Body=b"theirs")
    drain(load("s3_write"))
    second = manifest["key"].rsplit(".", 1)[0]
    bodies = {item["Key"]: s3.get_object(Bucket="created-later", Key=item["Key"])["Body"].read()
              for item in s3.list_objects_v2(Bucket="created-later")["Contents"]}
    assert bodies == {second + ".1": b"theirs", second + ".2": b"mine"}


def test_a_damaged_manifest_is_set_aside_and_the_rest_uploaded(s3, batching, load):
    batching(BATCH_EVENTS=1)
    earlier = load("s3_write")
    earlier.instance.stopping.set()  # upload nothing
    send(earlier, event("kept"), event("damaged"))
    earlier.stop()
    manifests = [name for name in spool_files() if name.endswith(".json")]
    with open(os.path.join("s3_write.spool", manifests[1]), "w") as handle:
        handle.write("{not json")
    drain(load("s3_write"))
    assert [stored["Data"] for stored in all_objects(s3).values()] == [b"kept"]
    assert sorted(os.listdir("s3_write.spool/damaged")) == sorted([
        manifests[1], manifests[1].replace(".json", ".data")])
    assert "cannot be read" in api.logged("ERROR")[0]


def test_another_writer_on_the_same_spool_is_refused_naming_the_one_that_has_it(
        s3, settings, load, start_refused):
    load("s3_write")
    assert start_refused("s3_write")[-1] == (
        "ERROR s3_write: the spool %s is in use by s3_write (pid %d): give each <Output> its "
        "own SPOOL_DIR (an instance's: NXLOG_S3_<INSTANCE>_SPOOL_DIR)"
        % (os.path.abspath("s3_write.spool"), os.getpid()))


def counting_fsyncs(module):
    """A Disk of the script MODULE that counts the fsync calls."""
    class Counting(module.Disk):
        synced = []

        def fsync(self, fd):
            self.synced.append(fd)
            module.Disk.fsync(fd)
    return Counting()


@pytest.mark.parametrize("policy, calls_per_event", [("event", 1), ("os", 0)])
def test_fsync_follows_its_setting(s3, batching, load, build, policy, calls_per_event):
    batching(FSYNC=policy)
    module = load("s3_write")
    disk = counting_fsyncs(module)
    writer = build(module, disk=disk)
    send(writer, *[event("e%d" % n) for n in range(5)])
    assert len(disk.synced) == 5 * calls_per_event


def test_fsync_per_batch_syncs_when_a_batch_closes(s3, batching, load, build):
    module = load("s3_write")
    disk = counting_fsyncs(module)
    writer = build(module, disk=disk)
    send(writer, *[event("e%d" % n) for n in range(9)])
    assert disk.synced == []
    send(writer, event("tenth"))  # its close is left to an uploader thread
    wait_for(lambda: len(disk.synced) == 3, what="the body, the manifest and the folder synced")


def test_a_time_before_1970_uses_the_current_time_and_recovers(s3, batching, load):
    earlier = load("s3_write")
    send(earlier, event("old", "1960-01-01 00:00:00"))
    earlier.stop()
    [name] = spool_files()
    assert int(name.split("-")[1].split(".")[0]) > 1700000000
    drain(load("s3_write"))  # and the next run takes the batch up
    [key] = all_objects(s3)
    assert key.startswith("web01/20")


def disk_cutting_short(module, times):
    """A Disk of the script MODULE on which the next TIMES writes to the spool get only part
    of their bytes, with a full disk's error, as a full disk does."""
    class CuttingShort(module.Disk):
        failures = iter(range(times))

        def write(self, fd, data):
            if next(self.failures, None) is None:
                return module.Disk.write(fd, data)
            module.Disk.write(fd, data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")
    return CuttingShort()


def test_a_full_disk_makes_write_data_wait_and_the_cut_write_is_taken_back_whole(
        s3, batching, load, build):
    batching(BATCH_EVENTS=4)
    module = load("s3_write")
    writer = build(module, disk=disk_cutting_short(module, times=3))
    assert api.call_write_data(writer.write_data, event("waited for room"))
    assert "the disk of the spool" in api.logged("WARNING")[0]
    assert "is full (No space left on device): write_data waits" in api.logged("WARNING")[0]
    send(writer, event("second"), event("third"), event("fourth"))
    drain(writer)
    assert [lines_of(stored) for stored in all_objects(s3).values()] == [
        ["waited for room", "second", "third", "fourth"]]


def test_a_disk_full_past_a_second_holds_the_event_in_memory_until_it_takes_it(
        s3, batching, load, build):
    batching(BATCH_EVENTS=3)
    module = load("s3_write")
    disk = filling_disk(module, fails="write")
    writer = build(module, disk=disk)
    send(writer, event("first"))
    disk.full = True
    started = time.monotonic()
    assert api.call_write_data(writer.write_data, event("held"))
    assert time.monotonic() - started < 1.5  # NXLog can stop the module at any moment
    assert writer.spool.pending() == 2
    disk.full = False
    send(writer, event("third"))
    drain(writer)
    assert [lines_of(stored) for stored in all_objects(s3).values()] == [
        ["first", "held", "third"]]


def test_with_spool_full_drop_a_full_disk_refuses_the_event_whole_and_counts_it(
        s3, batching, load, build):
    batching(BATCH_EVENTS=3, SPOOL_FULL="drop")
    module = load("s3_write")
    writer = build(module, disk=disk_cutting_short(module, times=2))
    assert not api.call_write_data(writer.write_data, event("dropped"))
    assert not api.call_write_data(writer.write_data, event("dropped too"))
    assert "is full (No space left on device): event dropped, 2 dropped so far" in \
        api.logged("ERROR")[1]
    send(writer, event("first"), event("second"), event("third"))
    drain(writer)
    assert [lines_of(stored) for stored in all_objects(s3).values()] == [
        ["first", "second", "third"]]


def test_another_write_error_refuses_the_event_with_its_reason(s3, batching, load, build):
    batching(BATCH_EVENTS=2)
    module = load("s3_write")

    class Broken(module.Disk):
        def write(self, fd, data):
            raise OSError(errno.EIO, "Input/output error")
    writer = build(module, disk=Broken())
    assert not api.call_write_data(writer.write_data, event("refused"))
    assert "cannot write to the spool" in api.logged("ERROR")[0]
    assert "Input/output error: event refused" in api.logged("ERROR")[0]


def test_a_manifest_the_full_disk_refuses_leaves_the_batch_to_be_closed_again_losing_nothing(
        s3, batching, load, build):
    batching(BATCH_EVENTS=2)
    module = load("s3_write")

    class RefusingTwice(module.Disk):
        refusals = iter(range(2))

        def write_atomically(self, path, data, sync=True):
            if next(self.refusals, None) is not None:
                raise OSError(errno.ENOSPC, "No space left on device")
            module.Disk.write_atomically(self, path, data, sync)
    writer = build(module, disk=RefusingTwice())
    send(writer, event("one"), event("two"))  # the close fails: the batch waits to close
    # (closed by write_data, or by an uploader thread that took the close over)
    wait_for(lambda: api.logged("WARNING"), what="the refused close logged")
    assert "cannot close a batch" in api.logged("WARNING")[0]
    assert "closing is tried again" in api.logged("WARNING")[0]
    send(writer, event("three"))  # the close is tried again; this event opens another
    send(writer, event("four"))  # which closes in its turn
    drain(writer)
    assert sorted(lines_of(stored) for stored in all_objects(s3).values()) == [
        ["one", "two"], ["three", "four"]]


# ---- A full spool ----

@pytest.fixture
def stalled(s3, settings, load_then_lose_bucket):
    """A writer whose uploads fail (its bucket is gone), with a spool of about two events;
    and what makes the bucket again."""
    settings(SPOOL_MAX_BYTES=20)
    return (lambda: load_then_lose_bucket("s3_write", "created-later"),
            lambda: s3.create_bucket(Bucket="created-later"))


def test_a_full_spool_holds_write_data_a_second_then_takes_the_event_losing_nothing(
        stalled):
    start, bucket_back = stalled
    writer = start()
    send(writer, event("0123456789"))
    started = time.monotonic()
    send(writer, event("abcdefghij!"))  # more than the spool has room for
    assert 0.9 <= time.monotonic() - started < 1.5  # NXLog can stop the module at any moment
    assert "each write_data call waits up to 1 s for room, then takes its event all the " \
           "same, so that NXLog's flow control holds its inputs back" in api.logged("WARNING")[-1]
    assert writer.instance.spool.bytes == 21  # SPOOL_MAX_BYTES=20, passed by one event
    bucket_back()  # S3 takes events again
    drain(writer)
    assert writer.instance.spool.bytes == 0


def test_a_full_spool_drops_with_an_error_that_counts_when_asked(stalled, settings):
    settings(SPOOL_FULL="drop")
    writer = stalled[0]()
    send(writer, event("0123456789"))
    for dropped in (1, 2):
        assert not api.call_write_data(writer.write_data, event("abcdefghij!"))
        assert "event dropped, %d dropped so far" % dropped in api.logged("ERROR")[-1]


def test_an_event_larger_than_the_spool_is_refused_clearly(stalled):
    writer = stalled[0]()
    assert not api.call_write_data(writer.write_data, event("x" * 100))
    assert "can never fit in SPOOL_MAX_BYTES=20" in api.logged("ERROR")[-1]


# ---- Object options ----

def head(client, key=None):
    key = key or next(iter(all_objects(client)))
    return client.head_object(Bucket=BUCKET, Key=key)


@pytest.mark.parametrize("options, expected", [
    ({"STORAGE_CLASS": "STANDARD_IA"}, {"StorageClass": "STANDARD_IA"}),
    ({"SSE": "AES256"}, {"ServerSideEncryption": "AES256"}),
])
def test_object_options_reach_the_object(s3, settings, load, options, expected):
    settings(**options)
    writer = load("s3_write")
    send(writer, event("x"))
    drain(writer)
    stored = head(s3)
    assert {name: stored.get(name) for name in expected} == expected


def test_sse_kms_with_a_key_reaches_the_object(s3, settings, load):
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    settings(SSE="aws:kms", SSE_KMS_KEY_ID=key_id)
    writer = load("s3_write")
    send(writer, event("x"))
    drain(writer)
    stored = head(s3)
    assert (stored["ServerSideEncryption"], stored["SSEKMSKeyId"]) == ("aws:kms", key_id)


def test_expected_bucket_owner_is_sent_with_every_upload(s3, settings, load):
    settings(EXPECTED_BUCKET_OWNER="123456789012")
    writer = load("s3_write")
    sent = []
    writer.instance.client.meta.events.register("before-call.s3.PutObject",
                                      lambda params, **kwargs: sent.append(params["headers"]))
    send(writer, event("x"))
    drain(writer)
    assert sent[0]["x-amz-expected-bucket-owner"] == "123456789012"


@pytest.mark.parametrize("multipart_threshold, requests", [
    (5 * 1024 * 1024, [("CreateMultipartUpload", None), ("UploadPart", None),
                       ("UploadPart", None), ("CompleteMultipartUpload", "*")]),
    (8 * 1024 * 1024, [("PutObject", "*")]),
])
def test_a_large_batch_goes_through_the_transfer_manager_conditionally(
        s3, batching, build, multipart_threshold, requests):
    batching(BATCH_EVENTS=100, BATCH_BYTES=6 * 1024 * 1024, COMPRESSION="none")
    writer = build("s3_write", in_memory_upload=1024 * 1024, transfer_config=TransferConfig(
        multipart_threshold=multipart_threshold, multipart_chunksize=5 * 1024 * 1024,
        use_threads=False))
    sent = []
    writer.client.meta.events.register(
        "before-call.s3", lambda params, model, **kwargs: sent.append(
            (model.name, params["headers"].get("If-None-Match"))))
    big = "y" * (100 * 1024)
    send(writer, *[event("%02d %s" % (n, big)) for n in range(62)])  # a little over 6 MiB
    drain(writer)
    assert sent == requests
    [stored] = all_objects(s3).values()
    assert [line[:2] for line in lines_of(stored)] == ["%02d" % n for n in range(62)]
