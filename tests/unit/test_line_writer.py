"""writer/encode.py: write_data for a batch, the hot path (Encoder.line_writer, one frame an
event, the fields read from NXLog's C library), hands the spool what Encoder.record gives,
whatever the event holds."""

import types

import pytest

from nxlog_s3.common import events
from nxlog_s3.writer import encode
from nxlog_s3.writer.encode import Encoder
from parts import writer_settings


class Library(object):
    """NXLog CE's C library (libpynxlog) over events whose c_logdata is a dict."""

    @staticmethod
    def get_logdata_field_names(c_module, c_logdata):
        return list(c_logdata)

    @staticmethod
    def get_logdata_field(c_module, c_logdata, name):
        return c_logdata[name]


def om_python_event(fields):
    return types.SimpleNamespace(module=types.SimpleNamespace(c_module=1),
                                 c_logdata=dict(fields))


class MethodsEvent(object):
    """An event of an API without the C library's handles: methods only."""

    def __init__(self, fields):
        self.fields = dict(fields)

    def field_names(self):
        return list(self.fields)

    def get_field(self, name):
        return self.fields[name]


def use_library(monkeypatch, library):
    """LIBRARY as NXLog CE's C library, for reading the fields and for line_writer."""
    monkeypatch.setattr(events, "LIBRARY", library)
    monkeypatch.setattr(encode, "LIBRARY", library)


@pytest.fixture
def library(monkeypatch):
    library = Library()
    use_library(monkeypatch, library)
    return library


@pytest.mark.parametrize("fields", [
    {"raw_event": "GET /", "EventReceivedTime": "2026-12-04 03:00:00",
     "SourceModuleName": "in", "SourceModuleType": "im_file"},
    {"raw_event": "no time"},
    {"raw_event": "x", "EventReceivedTime": "soon", "EventTime": "2026-12-04 02:59:59"},
    {"raw_event": "x", "EventReceivedTime": "2026-13-45 99:99:99", "Severity": 3},
    {"raw_event": "x", "EventTime": "2026-12-04 02:59:59", "Data": b"\x00\xff"},
], ids=["im_file's", "no time", "a received time NXLog never gives", "no such time",
        "binary"])
@pytest.mark.parametrize("body_format", ["json", "parquet"])
def test_the_line_writer_hands_the_spool_what_record_gives(library, fields, body_format):
    encoder = Encoder(writer_settings(FORMAT=body_format, BATCH_EVENTS=100), None)
    handed = []
    write = encoder.writer(lambda *record: handed.append(record))
    assert write.__name__ == "write_line"  # the hot path, not record()'s
    write(om_python_event(fields))
    assert handed == [encoder.record(om_python_event(fields))]
    assert handed[0][2] == fields.get("EventReceivedTime")  # as NXLog gives it


def test_an_event_without_the_librarys_handles_goes_through_record(library):
    encoder = Encoder(writer_settings(BATCH_EVENTS=100), None)
    handed = []
    fields = {"raw_event": "x", "EventReceivedTime": "2026-12-04 03:00:00"}
    encoder.writer(lambda *record: handed.append(record))(MethodsEvent(fields))
    assert handed == [encoder.record(om_python_event(fields))]


@pytest.mark.parametrize("batch_events", [100, 1], ids=["batches", "an object an event"])
def test_without_the_library_write_data_hands_the_spool_records(monkeypatch, batch_events):
    use_library(monkeypatch, None)
    fields = {"raw_event": "x", "EventReceivedTime": "2026-12-04 03:00:00"}
    encoder, handed = Encoder(writer_settings(BATCH_EVENTS=batch_events), None), []
    encoder.writer(lambda *record: handed.append(record))(MethodsEvent(fields))
    assert handed == [encoder.record(MethodsEvent(fields))]
