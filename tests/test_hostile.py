"""Bad input, generated (hypothesis): odd events for the writer, hostile bucket contents for
the reader. Nothing crashes NXLog's call; every event is stored, and every object that
cannot be read is reported by its key while the objects around it are read."""

import gzip
import itertools
import pickle
import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from helpers import BUCKET, JSON_LINES, all_objects, batch, drain, gzip_bomb, read_all
from nxlog_stub import api

GENERATED = hypothesis_settings(max_examples=40, deadline=None, database=None,
                                suppress_health_check=list(HealthCheck))

# ---- Odd events into the writer ----

# Every type get_field returns: text (lone surrogates, NUL bytes, newlines included), integers
# of any size, booleans, binary fields.
VALUES = st.one_of(st.text(), st.integers(), st.integers(min_value=2 ** 64, max_value=10 ** 40),
                   st.booleans(), st.binary().map(memoryview))
RECEIVED = st.one_of(st.text(), st.integers(), st.booleans(), st.binary().map(memoryview),
                     st.just("2026-02-30 25:61:61"), st.just("0000-00-00 00:00:00"),
                     st.datetimes().map(lambda when: when.strftime("%Y-%m-%d %H:%M:%S")))
EVENTS = st.fixed_dictionaries(
    {"raw_event": st.one_of(st.text(), st.just(""), st.binary().map(memoryview))},
    optional={"EventReceivedTime": RECEIVED,
              "odd field \n\0\ud800": VALUES}).flatmap(
    lambda fixed: st.dictionaries(st.text(min_size=1), VALUES, max_size=4).map(
        lambda extra: dict(extra, **fixed)))
WRITER_MODES = {"raw": {}, "json": {"FORMAT": "json"}, "pickle": {"FORMAT": "pickle"},
                "batches": {"FORMAT": "json", "BATCH_EVENTS": 5, "BATCH_AGE": 0.1}}


def events_stored(s3, batches):
    objects = all_objects(s3).values()
    if not batches:
        return len(objects)
    return sum(len(gzip.decompress(stored["Data"]).splitlines()) for stored in objects)


@pytest.mark.parametrize("mode", sorted(WRITER_MODES))
def test_any_event_is_taken_by_write_data_and_stored(s3, settings, load, mode):
    settings(**WRITER_MODES[mode])
    writer = load("s3_write")
    written = itertools.count(1)

    @GENERATED
    @given(EVENTS)
    def write(fields):
        assert api.call_write_data(writer.write_data, api.new_event(api.output_module(),
                                                                    fields))
        next(written)
    write()
    drain(writer)
    assert events_stored(s3, mode == "batches") == next(written) - 1
    assert api.logged("ERROR") == []


@pytest.mark.parametrize("mode", sorted(WRITER_MODES))
@pytest.mark.parametrize("size", [0, 10 * 1024 * 1024], ids=["empty", "10MB"])
def test_an_empty_and_a_10_mb_raw_event_are_stored_whole_and_posted_as_far_as_nxlog_takes(
        s3, settings, load, mode, size):
    settings(ALLOW_PICKLE="true", **WRITER_MODES[mode])
    writer = load("s3_write")
    text = "".join(chr(32 + n % 90) for n in range(size))
    assert api.call_write_data(writer.write_data, api.new_event(api.output_module(), {
        "raw_event": text}))
    drain(writer)
    reader = load("s3_read")
    [key] = all_objects(s3)
    stored = reader.instance.decoder.events(key, s3.get_object(Bucket=BUCKET, Key=key))
    assert [fields["raw_event"] for fields in stored] == [text]
    _, posted = api.call_read_data(reader.read_data, api.input_module())
    assert [event.get_field("raw_event") for event in posted] == [text[:1 << 20]]  # NXLog's
    assert key in all_objects(s3)                                                  # limit


# ---- Hostile objects in the bucket ----

MAX_EVENT_BYTES = 65536

METADATA_VALUE = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1)
# (kind, body, metadata, whether the reader must report it)
HOSTILE = st.one_of(
    st.tuples(st.lists(st.text(), min_size=1, max_size=20).map(lambda texts: batch(*texts)),
              st.floats(0.05, 0.95)).map(lambda drawn: (
                  "truncated gzip", drawn[0][:int(len(drawn[0]) * drawn[1])], JSON_LINES, True)),
    st.just(("bomb", gzip_bomb(2 << 20), JSON_LINES, True)),
    st.just(("bomb without metadata", gzip_bomb(2 << 20), {}, True)),
    st.binary(min_size=1).filter(lambda body: b"\n" not in body).map(
        lambda body: ("invalid JSON", gzip.compress(b"{not json " + body + b"\n"), JSON_LINES,
                      True)),
    st.sampled_from(["[1, 2]", '"text"', "null", "3"]).map(
        lambda body: ("JSON that is no object", gzip.compress(body.encode() + b"\n"),
                      JSON_LINES, True)),
    METADATA_VALUE.filter(lambda value: value not in ("raw", "json", "jsonl", "pickle")).map(
        lambda value: ("unknown format", b"x", {"nxlog-s3-format": value}, True)),
    METADATA_VALUE.filter(lambda value: value not in ("none", "gzip", "zstd")).map(
        lambda value: ("unknown compression", b"x", {"nxlog-s3-compression": value}, True)),
    st.dictionaries(st.text(), st.integers(), max_size=3).map(
        lambda fields: ("pickle", pickle.dumps(fields, protocol=2), {}, True)),
    st.sampled_from([{}, JSON_LINES, {"nxlog-s3-format": "raw"}]).map(
        lambda metadata: ("zero bytes", b"", metadata, False)),
    st.binary(min_size=1).map(lambda body: ("not UTF-8", b"\xff\xfe" + body, {}, True)),
)
OUTSIDE = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                  max_size=40)


@pytest.fixture
def fresh_reader(s3, settings, load, tmp_path):
    """A reader of a new, empty bucket: one per generated example."""
    def make():
        bucket = "nxlog-hostile-%s" % uuid.uuid4().hex[:12]
        s3.create_bucket(Bucket=bucket)
        settings(BUCKET=bucket, CHECKPOINT=tmp_path / bucket, MAX_ATTEMPTS=1,
                 POLL_INTERVAL=0.5, MAX_EVENT_BYTES=MAX_EVENT_BYTES)
        return bucket, load("s3_read")
    return make


# some 20 s of one worker: make reliability (and CI) runs it, make test the same objects by
# name (tests/test_hostile_bucket.py)
@pytest.mark.reliability
def test_hostile_objects_are_reported_by_key_and_the_others_read(s3, fresh_reader):
    @GENERATED
    @given(st.lists(HOSTILE, min_size=1, max_size=6), st.lists(OUTSIDE, max_size=2))
    def read(hostile, outside):
        api.clear_logs()
        bucket, reader = fresh_reader()
        reported = []
        for second, (_, body, metadata, report) in enumerate(hostile):
            key = "web01/2026-03-01/10.00.%02d.1" % second
            s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
            s3.put_object(Bucket=bucket, Key="web01/2026-03-01/10.00.%02d.2" % second,
                          Body=batch("good %d" % second), Metadata=JSON_LINES)
            if report:
                reported.append(key)
        for number, name in enumerate(outside):
            key = "web01/%d %s" % (number, name)
            s3.put_object(Bucket=bucket, Key=key, Body=b"not in the scheme")
            reported.append(key)
        posted = read_all(reader)
        assert [text for text in posted if text.startswith("good ")] == [
            "good %d" % second for second in range(len(hostile))]
        logged = api.logged("WARNING") + api.logged("ERROR")
        for key in reported:
            assert any(repr("s3://%s/%s" % (bucket, key)) in line for line in logged), (
                key, logged)
        reader.stop()
    read()
