"""What s3_write.py stores, s3_read.py gives back: every format, with and without gzip."""

import base64

import pytest

from helpers import drain
from nxlog_stub import api

EVENT = {"raw_event": "caf\u00e9 \u2603 lone surrogate \ud800 end", "Severity": 3,
         "Flag": True, "Host": "web01", "Payload": memoryview(b"\x00\xff")}
ADDED_BY_NXLOG = ("EventReceivedTime", "SourceModuleName", "SourceModuleType")

# What each format brings back, after NXLog's set_field on the reading side: the lone
# surrogate, which NXLog would make a '?', escaped.
RAW_EVENT = "caf\u00e9 \u2603 lone surrogate \\ud800 end"
RESTORED = {
    "raw": {"raw_event": RAW_EVENT},
    "json": {"raw_event": RAW_EVENT, "Severity": 3, "Flag": 1, "Host": "web01",
             "Payload": base64.b64encode(b"\x00\xff").decode()},
    "pickle": {"raw_event": RAW_EVENT, "Severity": 3, "Flag": 1, "Host": "web01",
               "Payload": str(b"\x00\xff")},
}


def read_back(reader):
    """The fields of the events one read_data call posts, less those NXLog adds at post()."""
    _, events = api.call_read_data(reader.read_data, api.input_module())
    fields = [event.fields() for event in events]
    for one in fields:
        for name in ADDED_BY_NXLOG:
            del one[name]
    return fields


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("body_format", ["raw", "json", "pickle"])
def test_an_event_comes_back_as_it_went_in(s3, settings, load, body_format, compression):
    settings(FORMAT=body_format, COMPRESSION=compression, ALLOW_PICKLE="true")
    writer, reader = load("s3_write"), load("s3_read")
    assert api.call_write_data(writer.write_data, api.new_event(api.output_module(), EVENT))
    drain(writer)
    assert read_back(reader) == [RESTORED[body_format]]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_a_batch_comes_back_event_by_event_with_every_field(s3, settings, load, compression):
    if compression == "zstd":
        pytest.importorskip("zstandard", reason="COMPRESSION=zstd needs the zstandard package")
    settings(BATCH_EVENTS=3, COMPRESSION=compression)
    writer, reader = load("s3_write"), load("s3_read")
    for n in range(3):
        event = api.new_event(api.output_module(), dict(EVENT, Severity=n))
        assert api.call_write_data(writer.write_data, event)
    drain(writer)
    assert read_back(reader) == [dict(RESTORED["json"], Severity=n) for n in range(3)]
