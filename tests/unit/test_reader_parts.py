"""The reader's parts alone: seconds and marks (position.py), the guard on what NXLog's
set_field takes (fields.py), the decoding budget (lines.py), and the settings."""

import pytest

from nxlog_s3.common.errors import UndecodableObject
from nxlog_s3.common.settings import ConfigError
from nxlog_s3.reader.fields import NXLOG_MAX_TEXT, FieldGuard
from nxlog_s3.reader.lines import DecodeBudget, _json_fields
from nxlog_s3.reader.position import Seconds, _mark, _marks, _marks_text
from parts import reader_settings


def test_a_second_of_the_key_scheme_is_read_and_written_back_in_utc():
    seconds = Seconds("utc")
    assert seconds.epoch("2026-03-01/10.00.00") == 1_772_359_200
    assert seconds.text(1_772_359_200) == "2026-03-01/10.00.00"


def test_a_second_that_does_not_exist_is_refused():
    with pytest.raises(ValueError):
        Seconds("utc").epoch("2026-02-30/10.00.00")


def test_marks_are_kept_as_ranges_per_suffix_and_read_back():
    marks = {_mark(counter, ".jsonl.gz") for counter in (1, 2, 3, 7)} | {_mark(1, ".parquet")}
    text = _marks_text(marks)
    assert text == "1-3,7@.jsonl.gz;1@.parquet"
    assert _marks(text) == marks


def test_the_guard_leaves_a_plain_event_as_it_is():
    fields = {"raw_event": "hello", "Severity": 3}
    assert FieldGuard().guarded(fields) == (fields, None, False)


def test_the_guard_escapes_a_nul_in_a_name_and_posts_big_integers_as_text():
    safe, changed, cut = FieldGuard().guarded({"a\x00b": 1, "big": 2 ** 70})
    assert safe == {"a\\u0000b": 1, "big": str(2 ** 70)}
    assert sorted(changed) == ["a\x00b", "big"] and not cut


def test_the_guard_cuts_text_beyond_what_nxlog_takes():
    safe, changed, cut = FieldGuard().guarded({"raw_event": "x" * (NXLOG_MAX_TEXT + 10)})
    assert len(safe["raw_event"].encode()) <= NXLOG_MAX_TEXT and cut


def test_the_budget_refuses_an_object_expanding_beyond_its_bound():
    settings = reader_settings(MAX_EVENT_BYTES=1024, MAX_EXPANSION=10)
    budget = DecodeBudget(settings, 200)  # stored as 200 bytes: 2,000 decoded at the most
    budget.take(1500)
    with pytest.raises(UndecodableObject):
        budget.take(1000)


def test_a_line_that_is_not_a_json_object_is_undecodable_with_its_line_number():
    with pytest.raises(UndecodableObject, match="line 3"):
        _json_fields(b"[1, 2]", 3)


def test_a_bad_setting_is_refused_naming_the_variable_it_came_from():
    with pytest.raises(ConfigError, match="NXLOG_S3_POLL_INTERVAL"):
        reader_settings(POLL_INTERVAL="soon")
