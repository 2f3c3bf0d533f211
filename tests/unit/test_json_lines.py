"""The reader's hot path alone: a batch's JSON lines, decoded a block at a time, and the
poster that checks each field as it sets it through NXLog's C library."""

import io
import json
import time
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


@pytest.mark.parametrize("block", [None, 40])  # the bad line in the first block, or later
def test_the_events_before_a_line_that_cannot_be_decoded_come_before_its_error(monkeypatch,
                                                                               block):
    body = lines({"n": 1}, {"n": 2}) + b"{bad\n" + lines({"n": 4})
    if block:
        monkeypatch.setattr(decode, "LINES_BLOCK", block)
    reader = reader_settings()
    events = Decoder(reader, None).events("k", {
        "Body": io.BytesIO(body), "ContentLength": len(body), "Metadata": JSON_LINES})
    assert [next(events), next(events)] == [{"n": 1}, {"n": 2}]
    with pytest.raises(UndecodableObject, match="line 3"):
        next(events)


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


def one_at_a_time(poster):
    """post(fields): FIELDS, one event, posted by POSTER."""
    return lambda fields: poster.post(iter([fields]), 1)


@pytest.mark.parametrize("with_library", [True, False])
def test_the_poster_posts_at_most_what_it_is_asked_for_and_counts_what_it_posted(
        monkeypatch, library, with_library):
    posted = []
    if not with_library:
        monkeypatch.setattr(events, "LIBRARY", None)
    module = types.SimpleNamespace(c_module=1) if with_library else method_module(posted)
    poster = FieldGuard().poster(module, None, False)
    events_left = iter([{"n": number} for number in range(5)])
    assert poster.post(events_left, 2) == 2
    assert poster.post(events_left, 2) == 2
    assert next(events_left) == {"n": 4}  # left just past the last event posted
    assert poster.post(events_left, 2) == 0
    assert (library.posted if with_library else posted) == [{"n": n} for n in range(4)]
    assert poster.posted == 4


@pytest.mark.parametrize("with_library", [True, False])
def test_the_poster_counts_the_events_it_posted_before_its_events_raised(
        monkeypatch, library, with_library):
    if not with_library:
        monkeypatch.setattr(events, "LIBRARY", None)
    module = types.SimpleNamespace(c_module=1) if with_library else method_module([])

    def failing():
        yield {"n": 1}
        yield {"n": 2}
        raise UndecodableObject("line 3 is not JSON")
    poster = FieldGuard().poster(module, None, False)
    with pytest.raises(UndecodableObject):
        poster.post(failing(), 10)
    assert poster.posted == 2


def test_the_poster_sets_a_plain_event_as_it_is(library):
    reports = []
    post = one_at_a_time(FieldGuard().poster(types.SimpleNamespace(c_module=1),
                                             reports.append, False))
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
    post = one_at_a_time(guard.poster(types.SimpleNamespace(c_module=1),
                                      lambda names, cut: reports.append((names, cut)), False))
    post({"raw_event": "seen", "n": 0})  # names seen before: the common case's own checks
    post(fields)
    assert library.posted[-1] == posted
    assert reports == [(changed, False)]


def method_module(posted):
    """An im_python module posted to by the methods of NXLog's API, into POSTED."""
    class Event(dict):
        def set_field(self, name, value):
            self[name] = value

        def post(self):
            posted.append(dict(self))

    return types.SimpleNamespace(logdata_new=Event)


def test_the_poster_without_the_library_posts_through_the_methods(monkeypatch):
    monkeypatch.setattr(events, "LIBRARY", None)
    posted = []
    module = method_module(posted)
    one_at_a_time(FieldGuard().poster(module, None, False))({"raw_event": "hello"})
    assert posted == [{"raw_event": "hello"}]


ZONED = "2026-11-28T11:28:18+09:00"
NXLOG_FORM = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1795832898))  # ZONED, local


@pytest.mark.parametrize("first", [
    {"raw_event": "x", "EventReceivedTime": ZONED, "Text": ""},  # names seen: the fast loop
    {"raw_event": "x\x00", "EventReceivedTime": ZONED, "Text": ""},  # and the slower way
])
def test_the_poster_posts_zoned_times_as_nxlog_gives_them_when_the_object_has_them(library,
                                                                                 first):
    report = lambda names, cut: None  # noqa: E731
    zoned = one_at_a_time(FieldGuard().poster(types.SimpleNamespace(c_module=1), report, True))
    zoned(first)
    zoned({"raw_event": "y", "EventReceivedTime": ZONED, "Text": "2026-11-28T11:28:1X+09:00"})
    assert [event["EventReceivedTime"] for event in library.posted] == [NXLOG_FORM] * 2
    assert library.posted[-1]["Text"] == "2026-11-28T11:28:1X+09:00"  # not a time: as it is
    one_at_a_time(FieldGuard().poster(types.SimpleNamespace(c_module=1), report, False))(
        {"raw_event": "z", "EventReceivedTime": ZONED})
    assert library.posted[-1]["EventReceivedTime"] == ZONED  # an object without zoned times


def test_the_poster_without_the_library_posts_zoned_times_as_nxlog_gives_them(monkeypatch):
    monkeypatch.setattr(events, "LIBRARY", None)
    posted = []
    module = method_module(posted)
    one_at_a_time(FieldGuard().poster(module, None, True))({"EventReceivedTime": ZONED})
    assert posted == [{"EventReceivedTime": NXLOG_FORM}]


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
    post = one_at_a_time(FieldGuard().poster(types.SimpleNamespace(c_module=1),
                                             reports.append, False))
    for _ in range(2):
        post({"raw_event": "caf\u00e9 \u65e5\u672c", "n": 1})
    assert library.posted == [{"raw_event": "caf\u00e9 \u65e5\u672c", "n": 1}] * 2
    assert reports == []
