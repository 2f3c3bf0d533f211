"""The reader's hot path alone: a batch's JSON lines, decoded a block at a time, and the
poster that checks each field as it sets it through NXLog's C library."""

import io
import json
import types

import pytest

from nxlog_s3.common import events
from nxlog_s3.common.errors import UndecodableObject
from nxlog_s3.reader import decode
from nxlog_s3.reader.decode import Decoder
from nxlog_s3.reader.fields import FieldGuard
from nxlog_s3.reader.lines import DecodeBudget
from parts import reader_settings

JSON_LINES = {"nxlog-s3-format": "jsonl", "nxlog-s3-compression": "none"}


def decoded(body, block=None, monkeypatch=None, **settings):
    if block:
        monkeypatch.setattr(decode, "LINES_BLOCK", block)
    reader = reader_settings(**settings)
    response = {"Body": io.BytesIO(body), "ContentLength": len(body), "Metadata": JSON_LINES}
    return list(Decoder(reader, None).events("k", response, DecodeBudget(reader, len(body))))


def lines(*events):
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


def test_lines_that_straddle_blocks_are_decoded_whole(monkeypatch):
    events = [{"raw_event": "event %d " % number + "x" * number} for number in range(200)]
    assert decoded(lines(*events), block=97, monkeypatch=monkeypatch) == events


def test_the_last_line_without_its_newline_is_an_event(monkeypatch):
    body = lines({"n": 1}) + b'{"n": 2}'
    assert decoded(body, block=5, monkeypatch=monkeypatch) == [{"n": 1}, {"n": 2}]


def test_empty_lines_are_passed_over_and_still_counted_in_line_numbers(monkeypatch):
    body = lines({"n": 1}) + b"\n" * 50 + b"[1]\n"
    with pytest.raises(UndecodableObject, match="line 52 does not hold an object"):
        decoded(body, block=16, monkeypatch=monkeypatch)


def test_a_bad_line_in_a_later_block_is_named_by_its_number(monkeypatch):
    body = lines(*({"n": number} for number in range(30))) + b"{oops\n" + lines({"n": 99})
    with pytest.raises(UndecodableObject, match="invalid JSON in line 31"):
        decoded(body, block=32, monkeypatch=monkeypatch)


def test_a_block_that_is_not_utf8_gives_its_good_lines_and_names_the_bad_one(monkeypatch):
    body = lines({"n": 1}) + b'{"n": "\xff"}\n' + lines({"n": 3})
    events = []
    with pytest.raises(UndecodableObject, match="line 2"):
        for event in Decoder(reader_settings(), None).events("k", {
                "Body": io.BytesIO(body), "ContentLength": len(body),
                "Metadata": JSON_LINES}, DecodeBudget(reader_settings(), len(body))):
            events.append(event)
    assert events == [{"n": 1}]


def test_a_line_with_trailing_spaces_or_a_carriage_return_is_still_json():
    assert decoded(b'{"n": 1}  \r\n{"n": 2}\n') == [{"n": 1}, {"n": 2}]


def test_a_line_beyond_max_event_bytes_is_refused_inside_a_block_or_across_blocks(
        monkeypatch):
    body = lines({"n": 1}) + lines({"x": "y" * 300}) + lines({"n": 3})
    with pytest.raises(UndecodableObject, match="line 2 is larger than MAX_EVENT_BYTES=100"):
        decoded(body, MAX_EVENT_BYTES=100)
    with pytest.raises(UndecodableObject, match="line 2 is larger than MAX_EVENT_BYTES=100"):
        decoded(body, block=64, monkeypatch=monkeypatch, MAX_EVENT_BYTES=100)


def test_a_line_of_exactly_max_event_bytes_passes(monkeypatch):
    event = {"x": "y" * 91}  # 100 bytes of JSON, then its newline
    assert len(json.dumps(event)) == 100
    assert decoded(lines(event, event), block=64, monkeypatch=monkeypatch,
                   MAX_EVENT_BYTES=100) == [event, event]


class Library(object):
    """NXLog's C library as the poster calls it: events as dicts, posted into a list."""

    def __init__(self):
        self.posted = []

    def logdata_new(self):
        return {}

    def set_logdata_field(self, c_module, c_logdata, name, value):
        c_logdata[name] = value

    def post_logdata(self, c_module, c_logdata):
        self.posted.append(c_logdata)


@pytest.fixture
def library(monkeypatch):
    library = Library()
    monkeypatch.setattr(events, "LIBRARY", library)
    return library


def test_the_poster_sets_a_plain_event_as_it_is(library):
    reports = []
    post = FieldGuard().poster(types.SimpleNamespace(c_module=1), reports.append)
    post({"raw_event": "hello", "Severity": 3, "ok": True, "ratio": 0.5})
    post({"raw_event": "again", "Severity": 4, "ok": False, "ratio": 1.5})
    assert library.posted == [{"raw_event": "hello", "Severity": 3, "ok": True, "ratio": 0.5},
                              {"raw_event": "again", "Severity": 4, "ok": False,
                               "ratio": 1.5}]
    assert reports == []


@pytest.mark.parametrize("fields, posted, changed", [
    ({"raw_event": "a\x00b", "n": 1}, {"raw_event": "a\\u0000b", "n": 1}, ["raw_event"]),
    ({"raw_event": "x", "big": 2 ** 70}, {"raw_event": "x", "big": str(2 ** 70)}, ["big"]),
    ({"raw_event": "x", "a\x00": 1, "a\\u0000": 2}, {"raw_event": "x", "a\\u0000~2": 1,
                                                      "a\\u0000": 2}, ["a\x00"]),
    ({"raw_event": "caf\u00e9 \ud800"}, {"raw_event": "caf\u00e9 \\ud800"}, ["raw_event"]),
])
def test_the_poster_posts_what_nxlog_takes_and_reports_what_changed(library, fields, posted,
                                                                     changed):
    reports = []
    guard = FieldGuard()
    post = guard.poster(types.SimpleNamespace(c_module=1),
                        lambda names, cut: reports.append((names, cut)))
    post({"raw_event": "seen", "n": 0})  # names seen before: the common case's own checks
    post(fields)
    assert library.posted[-1] == posted
    assert reports == [(changed, False)]


def test_the_poster_without_the_library_posts_through_the_methods(monkeypatch):
    monkeypatch.setattr(events, "LIBRARY", None)
    posted = []

    class Event(dict):
        def set_field(self, name, value):
            self[name] = value

        def post(self):
            posted.append(dict(self))

    module = types.SimpleNamespace(logdata_new=Event)
    FieldGuard().poster(module, None)({"raw_event": "hello"})
    assert posted == [{"raw_event": "hello"}]


def test_a_line_after_runs_of_empty_lines_is_named_by_its_number_in_the_object():
    body = lines({"n": 1}) + b"\n" * 1000 + b'{"n": "\xff"}\n' + b"\n\n" + b"{bad\n"
    with pytest.raises(UndecodableObject, match="line 1002"):
        decoded(body)
    with pytest.raises(UndecodableObject, match="line 1005"):
        decoded(lines({"n": 1}) + b"\n" * 1000 + lines({"n": 2}) + b"\n\n" + b"{bad\n")


def test_windows_line_ends_are_read_as_json_lines_on_the_slower_way():
    events = [{"n": number} for number in range(100)]
    body = b"".join(json.dumps(event).encode() + b"\r\n" for event in events)
    assert decoded(body) == events


def test_the_poster_sets_text_beyond_ascii_as_it_is(library):
    reports = []
    post = FieldGuard().poster(types.SimpleNamespace(c_module=1), reports.append)
    for _ in range(2):
        post({"raw_event": "caf\u00e9 \u65e5\u672c", "n": 1})
    assert library.posted == [{"raw_event": "caf\u00e9 \u65e5\u672c", "n": 1}] * 2
    assert reports == []
