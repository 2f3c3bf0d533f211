"""An archive that query engines read as it is: keys whose suffix names the content, times
with their zone, and Parquet batches; read back by the reader, by pyarrow and by DuckDB."""

import datetime
import gzip
import io
import json
import os
import re

import duckdb
import pyarrow.parquet
import pytest

from helpers import (
    BUCKET,
    ROOT,
    all_objects,
    drain,
    key_counter,
    put,
    read_all,
)
from nxlog_stub import api

RECEIVED = "2026-11-28 11:28:18"  # as NXLog gives a datetime field in Asia/Tokyo...
INSTANT = 1795832898  # ...2026-11-28T02:28:18Z


def send(writer, *fields):
    for each in fields:
        assert api.call_write_data(writer.write_data, api.new_event(api.output_module(), each)), \
            api.logged("ERROR")


def events(count, received=RECEIVED, **more):
    return [dict(more, raw_event="event %d" % number, EventReceivedTime=received)
            for number in range(count)]


def stored_keys(s3):
    return sorted(all_objects(s3))


def posted_fields(reader):
    """Every event the reader posts until it has caught up, as field dicts, less the fields
    NXLog sets at each post (EventReceivedTime among them: when the reader posted it)."""
    posted = []
    for _ in range(100):
        delay, batch = api.call_read_data(reader.read_data, api.input_module("s3"))
        posted += [{name: event.get_field(name) for name in event.field_names()
                    if name not in ("EventReceivedTime", "SourceModuleName",
                                    "SourceModuleType")} for event in batch]
        if delay == reader.instance.settings.POLL_INTERVAL:
            return posted
    raise AssertionError("the reader never caught up")


# ---- Suffixes ----

@pytest.mark.parametrize("compression, suffix", [
    ("gzip", ".jsonl.gz"), ("zstd", ".jsonl.zst"), ("none", ".jsonl")])
def test_a_batch_key_ends_in_a_suffix_that_names_its_content(s3, settings, load, zone,
                                                             compression, suffix):
    zone("UTC")
    settings(BATCH_EVENTS=2, COMPRESSION=compression)
    writer = load("s3_write")
    send(writer, *events(2, received="2026-11-28 02:28:18"))
    drain(writer)
    assert stored_keys(s3) == ["web01/2026-11-28/02.28.18.1" + suffix]
    assert read_all(load("s3_read")) == ["event 0", "event 1"]


@pytest.mark.parametrize("key_suffix, batch_events, form", [
    ("auto", 1, "web01/2026-11-28/02.28.18.%d"),
    ("always", 1, "web01/2026-11-28/02.28.18.%d.txt"),
    ("never", 2, "web01/2026-11-28/02.28.18.%d")])
def test_key_suffix_changes_the_keys_of_both_kinds_of_object(s3, settings, load, zone,
                                                             key_suffix, batch_events, form):
    zone("UTC")
    settings(KEY_SUFFIX=key_suffix, BATCH_EVENTS=batch_events)
    writer = load("s3_write")
    send(writer, *events(2, received="2026-11-28 02:28:18"))
    drain(writer)
    assert stored_keys(s3) == sorted(form % n for n in range(1, 3 - batch_events + 1))
    assert read_all(load("s3_read")) == ["event 0", "event 1"]


def test_keys_with_and_without_suffixes_are_read_in_counter_order(s3, settings, load):
    second = "web01/2026-03-01/10.00.00"
    batch = gzip.compress(b'{"raw_event": "batch 10"}\n')
    put(s3, second + ".10.jsonl.gz", batch, {"nxlog-s3-format": "jsonl",
                                             "nxlog-s3-compression": "gzip"})
    put(s3, second + ".2", "bare 2")
    put(s3, second + ".9.txt", "suffixed 9")
    assert read_all(load("s3_read")) == ["bare 2", "suffixed 9", "batch 10"]


def test_two_objects_of_one_counter_under_two_suffixes_are_both_read(s3, settings, load):
    second = "web01/2026-03-01/10.00.00"
    put(s3, second + ".1", "bare")
    put(s3, second + ".1.txt", "suffixed")
    assert read_all(load("s3_read")) == ["bare", "suffixed"]
    assert api.logged("WARNING") == []


def test_a_late_object_that_shares_a_counter_with_one_read_under_another_suffix_is_read(
        s3, settings, load):
    second = "web01/2026-03-01/10.00.00"
    put(s3, second + ".1.txt", "first writer")
    reader = load("s3_read")
    assert read_all(reader) == ["first writer"]
    put(s3, second + ".1", "second writer, late")  # sorts before the object read
    assert read_all(reader) == ["second writer, late"]
    assert all("second writer" not in line and "%s.1'" % second not in line
               for line in api.logged("WARNING"))


def test_a_writer_that_takes_up_a_bare_key_gives_its_counter_to_no_suffixed_key(
        s3, settings, load, zone, monkeypatch):
    zone("UTC")
    settings(BATCH_EVENTS=2, KEY_SUFFIX="never")  # as the version before suffixes
    writer = load("s3_write")
    send(writer, *events(2, received="2026-11-28 02:28:18"))
    drain(writer)
    writer.stop()
    monkeypatch.setenv("NXLOG_S3_KEY_SUFFIX", "auto")  # upgraded, restarted in that second
    writer = load("s3_write")
    send(writer, *events(2, received="2026-11-28 02:28:18"))
    drain(writer)
    assert stored_keys(s3) == ["web01/2026-11-28/02.28.18.1",
                               "web01/2026-11-28/02.28.18.2.jsonl.gz"]
    assert len(read_all(load("s3_read"))) == 4


# ---- Times with their zone ----

def test_datetime_fields_are_stored_with_their_zone_and_come_back_as_nxlog_gave_them(
        s3, settings, load, zone):
    zone("Asia/Tokyo")
    settings(BATCH_EVENTS=2)
    writer = load("s3_write")
    send(writer, *events(2, EventTime="2026-11-28 11:00:00", Note="2026-11-28 11:00",
                         Other="2026-11-28T11:00:00+09:00"))
    drain(writer)
    [(key, stored)] = all_objects(s3).items()
    assert key == "web01/2026-11-28/02.28.18.1.jsonl.gz"  # UTC in the key...
    line = json.loads(gzip.decompress(stored["Data"]).splitlines()[0])
    assert line["EventReceivedTime"] == "2026-11-28T11:28:18+09:00"  # ...and in the line
    assert line["EventTime"] == "2026-11-28T11:00:00+09:00"
    assert line["Note"] == "2026-11-28 11:00"  # not a datetime field's text: as it was
    assert stored["Metadata"]["nxlog-s3-first"] == "2026-11-28T02:28:18Z"
    assert stored["Metadata"]["nxlog-s3-times"] == "zoned"
    [first, _] = posted_fields(load("s3_read"))
    assert first == {"raw_event": "event 0", "EventTime": "2026-11-28 11:00:00",
                     "Note": "2026-11-28 11:00", "Other": "2026-11-28 11:00:00"}


def test_a_reader_in_another_zone_gives_the_same_instant_in_its_own_local_time(
        s3, settings, load, zone):
    zone("Asia/Tokyo")
    settings(BATCH_EVENTS=1, FORMAT="json")
    writer = load("s3_write")
    send(writer, *events(1, EventTime=RECEIVED))
    drain(writer)
    zone("Europe/London")
    [posted] = posted_fields(load("s3_read"))
    assert posted["EventTime"] == "2026-11-28 02:28:18"


def test_objects_of_older_writers_keep_their_times_as_they_are(s3, settings, load):
    put(s3, "web01/2026-03-01/10.00.00.1",
        b'{"raw_event": "old", "T": "2026-03-01T10:00:00+09:00"}', {"nxlog-s3-format": "json"})
    [posted] = posted_fields(load("s3_read"))
    assert posted["T"] == "2026-03-01T10:00:00+09:00"


# ---- Parquet ----

@pytest.fixture
def parquet(settings, zone):
    zone("Asia/Tokyo")
    settings(FORMAT="parquet", BATCH_EVENTS=100000, BATCH_AGE=1)


def parquet_file(stored):
    return pyarrow.parquet.ParquetFile(io.BytesIO(stored["Data"]))


def typed_events(count):
    return [dict({"Only": "in the first"} if number == 0 else {}, raw_event="event %d" % number,
                 EventReceivedTime=RECEIVED, EventTime=RECEIVED, Severity=number,
                 Ok=number % 2 == 0, Payload=memoryview(bytes([number % 256, 255])))
            for number in range(count)]


def test_a_parquet_batch_has_a_row_per_event_and_a_typed_column_per_field(s3, parquet, load):
    writer = load("s3_write")
    send(writer, *typed_events(3))
    drain(writer)
    [(key, stored)] = all_objects(s3).items()
    assert key == "web01/2026-11-28/02.28.18.1.parquet"
    assert stored["ContentType"] == "application/vnd.apache.parquet"
    assert "ContentEncoding" not in stored
    schema = parquet_file(stored).schema_arrow
    assert [(field.name, str(field.type)) for field in schema] == [
        ("Only", "string"), ("raw_event", "string"),
        ("EventReceivedTime", "timestamp[us, tz=UTC]"), ("EventTime", "timestamp[us, tz=UTC]"),
        ("Severity", "int64"), ("Ok", "bool"), ("Payload", "binary")]
    rows = parquet_file(stored).read().to_pylist()
    assert [row["raw_event"] for row in rows] == ["event 0", "event 1", "event 2"]
    assert rows[1]["EventReceivedTime"].timestamp() == INSTANT
    assert (rows[1]["Severity"], rows[1]["Ok"], rows[1]["Payload"]) == (1, False, b"\x01\xff")
    assert (rows[0]["Only"], rows[1]["Only"]) == ("in the first", None)


@pytest.mark.parametrize("compression", ["zstd", "snappy", "gzip", "none"])
def test_parquet_compression_is_the_setting(s3, parquet, settings, load, compression):
    settings(PARQUET_COMPRESSION=compression)
    writer = load("s3_write")
    send(writer, *typed_events(2))
    drain(writer)
    [stored] = all_objects(s3).values()
    column = parquet_file(stored).metadata.row_group(0).column(0)
    assert column.compression == {"none": "UNCOMPRESSED"}.get(compression, compression.upper())


ROW_GROUP = 32768  # s3_write.PARQUET_ROWS


def test_a_large_parquet_batch_is_written_a_row_group_at_a_time(s3, parquet, settings, load):
    settings(BATCH_EVENTS=ROW_GROUP + 10, BATCH_AGE=3600)
    writer = load("s3_write")
    assert writer.PARQUET_ROWS == ROW_GROUP
    send(writer, *events(ROW_GROUP + 10))
    drain(writer, seconds=60)
    [stored] = all_objects(s3).values()
    metadata = parquet_file(stored).metadata
    assert (metadata.num_rows, metadata.num_row_groups) == (ROW_GROUP + 10, 2)


def test_the_reader_reads_parquet_batches_as_nxlog_gave_the_events(s3, parquet, load):
    writer = load("s3_write")
    send(writer, *typed_events(2))
    drain(writer)
    assert posted_fields(load("s3_read")) == [
        {"raw_event": "event 0", "EventTime": RECEIVED, "Severity": 0, "Ok": 1,
         "Payload": "AP8=", "Only": "in the first"},
        {"raw_event": "event 1", "EventTime": RECEIVED, "Severity": 1, "Ok": 0,
         "Payload": "Af8="}]


@pytest.mark.parametrize("settings_, reason", [
    ({"BATCH_EVENTS": 1}, "FORMAT=parquet is for batches: set BATCH_EVENTS above 1"),
    ({"BATCH_EVENTS": 10, "COMPRESSION": "gzip"},
     "COMPRESSION=gzip with FORMAT=parquet: Parquet compresses inside the file"),
])
def test_parquet_settings_that_cannot_work_keep_nxlog_from_starting(settings, start_refused,
                                                                    settings_, reason):
    settings(FORMAT="parquet", **settings_)
    assert reason in start_refused("s3_write")[-1]


def test_parquet_without_pyarrow_is_a_clear_start_up_error(settings, start_refused, no_pyarrow):
    settings(FORMAT="parquet", BATCH_EVENTS=10)
    assert start_refused("s3_write", pythonpath=[no_pyarrow])[-1] == \
        "ERROR s3_write: FORMAT=parquet needs the pyarrow package for the Python NXLog runs " \
        "(pip install pyarrow), or use FORMAT=json"


# ---- Query engines ----

def download(s3, folder):
    """Every object, saved under its key in FOLDER, as `aws s3 sync` would."""
    for key, stored in all_objects(s3).items():
        path = os.path.join(folder, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(stored["Data"])


@pytest.mark.parametrize("format_, pattern", [
    ("json", "read_json_auto('%s/**/*.jsonl.gz')"),
    ("parquet", "read_parquet('%s/**/*.parquet')")])
def test_duckdb_reads_the_objects_under_their_keys_with_no_option(s3, settings, load, zone,
                                                                  tmp_path, format_, pattern):
    zone("Asia/Tokyo")
    settings(FORMAT=format_, BATCH_EVENTS=3)
    writer = load("s3_write")
    sent = [dict(fields, EventReceivedTime="2026-11-28 11:28:%02d" % (18 + number))
            for number, fields in enumerate(typed_events(6))]
    send(writer, *sent)
    drain(writer)
    download(s3, str(tmp_path / "archive"))
    rows = duckdb.sql("SELECT raw_event, Severity, epoch(CAST(EventReceivedTime AS TIMESTAMPTZ)) "
                      "FROM %s ORDER BY Severity" % (pattern % (tmp_path / "archive"))).fetchall()
    assert rows == [("event %d" % number, number, INSTANT + number) for number in range(6)]


QUERYING = os.path.join(ROOT, "docs", "QUERYING.md")


def duckdb_local_queries():
    """The statements of docs/QUERYING.md's DuckDB example on local files."""
    with open(QUERYING) as handle:
        text = handle.read()
    section = text[text.index("## DuckDB"):text.index("## Spark")]
    block = re.search(r"```sql\n(.*?)```", section, re.S).group(1)
    return [statement.strip() for statement in block.split(";") if statement.strip()]


def test_the_duckdb_examples_on_local_files_run_as_written(s3, settings, load, zone):
    zone("UTC")
    settings(FORMAT="json", BATCH_EVENTS=2)
    for server, received in (("web01", "2026-11-24 10:00:01"), ("web01", "2026-11-24 10:20:00"),
                             ("db01", "2026-11-24 12:00:00")):
        settings(SERVER=server)
        writer = load("s3_write")
        send(writer, *events(2, received=received))
        drain(writer)
        writer.stop()
    download(s3, "archive")  # where the docs' `aws s3 sync` puts it: the working directory
    in_range, per_server = duckdb_local_queries()
    assert [raw for _, raw in duckdb.sql(in_range).fetchall()] == ["event 0", "event 1"]
    assert duckdb.sql(per_server).fetchall() == [("db01", 2), ("web01", 4)]


def athena_ddl(table):
    with open(QUERYING) as handle:
        text = handle.read()
    return re.search(r"CREATE EXTERNAL TABLE %s\b.*?;" % table, text, re.S).group(0)


@pytest.mark.parametrize("table, format_, suffix", [
    ("nxlog_jsonl", "json", ".jsonl.gz"), ("nxlog_parquet", "parquet", ".parquet")])
def test_the_athena_location_template_matches_the_keys_the_writer_made(s3, settings, load, zone,
                                                                       table, format_, suffix):
    zone("UTC")
    settings(FORMAT=format_, BATCH_EVENTS=2)
    writer = load("s3_write")
    send(writer, *events(2, received="2026-11-28 23:59:59"),
         *events(2, received="2026-11-29 00:00:01"))
    drain(writer)
    ddl = athena_ddl(table)
    template = re.search(r"'storage\.location\.template'\s*=\s*'([^']+)'", ddl).group(1)
    day_format = re.search(r"'projection\.day\.format'\s*=\s*'([^']+)'", ddl).group(1)
    assert day_format == "yyyy-MM-dd"
    for key in stored_keys(s3):
        server, day, name = key.split("/")
        where = template.replace("${server}", server).replace("${day}", day)
        assert where.replace("s3://my-log-archive/", "") + name == key
        assert datetime.datetime.strptime(day, "%Y-%m-%d")  # what yyyy-MM-dd reads
        assert name.endswith(suffix) and key_counter(key) >= 1
    assert re.search(r"LOCATION 's3://my-log-archive/'", ddl)


def test_text_that_looks_zoned_but_is_no_time_stays_text(s3, parquet, settings, load):
    writer = load("s3_write")
    send(writer, dict(typed_events(1)[0], Odd="2026-13-45T99:99:99+09:00"))
    drain(writer)
    [stored] = all_objects(s3).values()
    assert str(parquet_file(stored).schema_arrow.field("Odd").type) == "string"
    [posted] = posted_fields(load("s3_read"))
    assert posted["Odd"] == "2026-13-45T99:99:99+09:00"


def test_a_counter_written_with_a_leading_zero_is_the_same_counter(s3, settings, load):
    second = "web01/2026-03-01/10.00.00"
    put(s3, second + ".01.txt", "leading zero")
    put(s3, second + ".1.txt", "plain")
    assert len(read_all(load("s3_read"))) == 1
    [warning] = api.logged("WARNING")
    assert "its counter and suffix are those of %r, which is read" % (second + ".01.txt") in \
        warning and repr("s3://%s/%s.1.txt" % (BUCKET, second)) in warning


def test_text_parquet_cannot_hold_is_stored_as_near_as_it_can_and_said(s3, parquet, load):
    writer = load("s3_write")
    send(writer, dict(typed_events(1)[0], raw_event="lone \ud800 surrogate", Big=2 ** 70))
    drain(writer)
    [(key, stored)] = all_objects(s3).items()
    [row] = parquet_file(stored).read().to_pylist()
    assert (row["raw_event"], row["Big"]) == ("lone \ufffd surrogate", str(2 ** 70))
    [warning] = api.logged("WARNING")
    assert "%r holds text with lone surrogates, which Parquet (UTF-8 only) cannot: they are " \
        "stored as U+FFFD" % ("s3://%s/%s" % (BUCKET, key)) in warning


def test_a_lone_surrogate_in_a_batch_of_plain_columns_is_stored_all_the_same(s3, parquet,
                                                                             load):
    writer = load("s3_write")
    send(writer, *events(2), dict(events(1)[0], raw_event="lone \udc80"))
    drain(writer)
    [stored] = all_objects(s3).values()
    rows = parquet_file(stored).read().to_pylist()
    assert [row["raw_event"] for row in rows] == ["event 0", "event 1", "lone \ufffd"]
    assert rows[0]["EventReceivedTime"].timestamp() == INSTANT


def test_a_parquet_batch_of_many_distinct_names_keeps_every_field_in_bounded_columns(
        s3, parquet, load):
    writer = load("s3_write")
    columns = writer.PARQUET_COLUMNS
    wide = [dict({"field %d.%d" % (number, name): "value %d" % name for name in range(300)},
                 raw_event="event %d" % number, Blob=memoryview(b"\x00\xff"), Big=2 ** 70)
            for number in range(40)]  # 12,000 names: as many columns cost names x rows
    send(writer, *wide)
    drain(writer)
    [(_, stored)] = all_objects(s3).items()
    schema = parquet_file(stored).schema_arrow
    assert len(schema.names) == columns + 1
    assert schema.metadata[b"nxlog-s3-more-fields"] == schema.names[-1].encode()
    _, posted = api.call_read_data(load("s3_read").read_data, api.input_module())
    back = [{name: value for name, value in event.fields().items() if name not in (
        "EventReceivedTime", "SourceModuleName", "SourceModuleType")} for event in posted]
    assert back == [dict(fields, Blob="AP8=", Big=str(2 ** 70)) for fields in wide]
