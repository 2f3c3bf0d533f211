"""Generated events (hypothesis) go through s3_write.py and come back through s3_read.py
with every field NXLog's set_field can keep, in every format that keeps fields."""

import base64
import json
import re

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from helpers import as_nxlog_takes, drain, nxlog_text
from nxlog_stub import api

ADDED_BY_NXLOG = ("EventReceivedTime", "SourceModuleName", "SourceModuleType")
# Every type get_field can return: text (any code point, lone surrogates and NUL included),
# integers of any size, booleans, and binary fields.
VALUES = st.one_of(st.text(), st.integers(), st.booleans(),
                   st.binary().map(memoryview))
NAMES = st.text(min_size=1).filter(lambda name: name not in ADDED_BY_NXLOG)
EVENTS = st.dictionaries(NAMES, VALUES, max_size=6)


def after_a_round_trip(value):
    """What a field comes back as: set_field keeps text and integers, booleans as 1/0; JSON
    keeps binary fields as base64 text."""
    if isinstance(value, memoryview):
        return base64.b64encode(bytes(value)).decode()
    return int(value) if isinstance(value, bool) else value


def restored(fields):
    """An event as the reader posts it: NXLog's logdata_new() starts every event with an
    empty raw_event, and each field comes back as after_a_round_trip says, then as NXLog
    takes it (as_nxlog_takes)."""
    event = {"raw_event": ""}
    event.update(as_nxlog_takes({name: after_a_round_trip(value)
                                 for name, value in fields.items()}))
    return event


def through_s3(writer, reader, events):
    """EVENTS (field dicts) written by WRITER, then the events READER posts, as field dicts
    less those NXLog adds."""
    for fields in events:
        assert api.call_write_data(writer.write_data, api.new_event(api.output_module(), fields))
    drain(writer)
    back = []
    while True:
        delay, posted = api.call_read_data(reader.read_data, api.input_module())
        back += [event.fields() for event in posted]
        if delay == reader.instance.settings.POLL_INTERVAL:
            break
    for fields in back:
        for name in ADDED_BY_NXLOG:
            del fields[name]
    return back


@pytest.mark.parametrize("batch_events", [1, 3])
def test_generated_events_come_back_with_their_fields(s3, settings, load, batch_events):
    settings(FORMAT="json", BATCH_EVENTS=batch_events, BATCH_AGE=0.1)
    writer, reader = load("s3_write"), load("s3_read")

    @hypothesis_settings(max_examples=40, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(st.lists(EVENTS, min_size=1, max_size=4))
    def round_trip(events):
        assert through_s3(writer, reader, events) == [restored(fields) for fields in events]
        assert api.logged("ERROR") == []
    round_trip()


def as_parquet_text(value):
    """A value in a Parquet text column (its field held two kinds of value in the batch)."""
    if isinstance(value, memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (bool, int)):
        return json.dumps(value)
    return value


def parquet_restored(events):
    """EVENTS of one Parquet batch as the reader posts them: a field of one kind comes back
    as after a JSON round trip, one of two kinds as text; integers beyond 64 bits are text,
    and lone surrogates U+FFFD."""
    kinds = {}
    for fields in events:
        for name, value in fields.items():
            kind = "binary" if isinstance(value, memoryview) else type(value).__name__
            if kind == "int" and not -2 ** 63 <= value < 2 ** 63:
                kind = "text"
            kinds[name] = kind if kinds.get(name, kind) == kind else "text"
    return [{name: re.sub("[\ud800-\udfff]", "\ufffd", value) if isinstance(value, str)
             else value for name, value in restored({
                 name: as_parquet_text(value) if kinds[name] == "text" else value
                 for name, value in fields.items()}).items()} for fields in events]


def test_generated_events_come_back_from_a_parquet_batch(s3, settings, load):
    settings(FORMAT="parquet", BATCH_EVENTS=1000, BATCH_AGE=0.1)
    writer, reader = load("s3_write"), load("s3_read")

    @hypothesis_settings(max_examples=40, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(st.lists(EVENTS, min_size=1, max_size=4))
    def round_trip(events):  # one batch: they are written well within BATCH_AGE
        assert through_s3(writer, reader, events) == parquet_restored(events)
        assert api.logged("ERROR") == []
    round_trip()


def test_any_server_name_is_refused_or_stays_one_key_segment(settings, load):
    parse = load("s3_read")._server  # the same code as s3_write.py's (tests/test_shared_code.py)

    @hypothesis_settings(max_examples=200, deadline=None, database=None)
    @given(st.text())
    def check(name):
        try:
            value = parse(name)
        except ValueError:
            return
        assert value and "/" not in value and ".." not in value
        assert all(ord(char) > 32 for char in value) and not value.startswith(".")
    check()


def test_any_raw_event_comes_back_exactly_in_the_raw_format_as_nxlog_takes_text(s3, settings,
                                                                                load):
    writer, reader = load("s3_write"), load("s3_read")

    @hypothesis_settings(max_examples=60, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(st.text())
    def round_trip(text):
        event = api.new_event(api.output_module(), {"raw_event": text})
        assert api.call_write_data(writer.write_data, event)
        drain(writer)
        _, posted = api.call_read_data(reader.read_data, api.input_module())
        assert [event.get_field("raw_event") for event in posted] == [nxlog_text(text)]
    round_trip()
