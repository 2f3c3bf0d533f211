"""Events encoded as objects or batch lines: fields, zoned times, JSON, pickle."""

import datetime
import functools
import json
import pickle

from nxlog_s3.common.events import LIBRARY, event_fields
from nxlog_s3.common.objects import NXLOG_TIME, instant, json_value, raw_bytes

RECEIVED = "EventReceivedTime"  # the field an object's key time comes from


def _event_epoch(received):
    """EventReceivedTime (a local-time string in NXLog, zoned in a batch's lines) as seconds
    since the epoch; None for a missing or unparsable value, or one before 1970."""
    epoch = instant(received)
    return epoch if epoch is not None and epoch >= 0 else None


def _last_epoch(received, first):
    """The time of a batch's last event (received at RECEIVED), for its metadata."""
    epoch = _event_epoch(received)
    return first if epoch is None else epoch


@functools.lru_cache(maxsize=4096)
def _zoned(text):
    """An NXLog datetime field's text (this host's local time, with no zone) as ISO 8601 with
    this host's offset at that time (2026-11-28T11:28:18+09:00); TEXT itself if it is no
    such time."""
    if not NXLOG_TIME.match(text):
        return text
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").astimezone().isoformat()
    except (ValueError, OverflowError, OSError):
        return text


def _zone_times(fields):
    """Gives FIELDS' datetime fields (EventReceivedTime, EventTime, ...: text in the form
    NXLog gives them, 'YYYY-MM-DD HH:MM:SS') their zone, so that whoever reads the object
    alone can tell the instant."""
    for name, value in fields.items():
        if type(value) is str and len(value) == 19 and value[10] == " ":  # as in line_writer
            fields[name] = _zoned(value)  # cached: a second's events share their times
    return fields


def _typed_json_value(value):
    """JSON for binary fields in a batch spooled for Parquet, which keeps them binary: an
    object, which no other field value is."""
    return {"base64": json_value(value)}


def _json_encoder(default=json_value):
    """encode(fields, 0): the pieces of FIELDS' compact JSON, the same as json.dumps gives
    once joined. json.dumps builds a new C encoder at every call, a third of its time for
    one event; this is one C encoder built once, with the arguments json.encoder gives it,
    called straight from the hot path (or the public, slower way where there is no C one)."""
    from json.encoder import c_make_encoder, encode_basestring_ascii
    if c_make_encoder is None:
        encode = json.JSONEncoder(default=default, separators=(",", ":")).encode
        return lambda fields, _: (encode(fields),)
    return c_make_encoder(None, default, encode_basestring_ascii, None, ":", ",", False,
                          False, True)


def _pickle(fields):
    binary = {name: bytes(value) if isinstance(value, memoryview) else value
              for name, value in fields.items()}
    return pickle.dumps(binary, protocol=2)


class Encoder(object):
    """An NXLog event as the object body holds it. A batch holds one JSON object per line.
    One event per object holds FORMAT, except that raw falls back to json for an event
    without raw_event, so that its fields are kept."""

    def __init__(self, settings, log):
        self.settings, self.log = settings, log
        self.batching = settings.BATCHING  # read at every event: kept at hand
        self.batch_format = settings.BODY_FORMAT
        self.encode = _json_encoder(_typed_json_value if self.batch_format == "parquet"
                                    else json_value)

    def json_text(self, fields):
        return "".join(self.encode(fields, 0))

    def writer(self, append):
        """write_data(event): the event's record handed to APPEND(body format, bytes,
        EventReceivedTime as NXLog gives it); for a batch, by line_writer where NXLog's C
        library is loaded."""
        if self.batching and LIBRARY is not None:
            return self.line_writer(append, LIBRARY)

        def write_record(event):
            append(*self.record(event))
        return write_record

    def line_writer(self, append, library):
        """write_data for a batch, the hot path of every writer: what record() does, in one
        Python frame an event. Under NXLog a Python call on this path costs about 0.2 µs,
        some 2 % of an event's time (bench/nxlog_bench.py), so the fields are read from
        NXLog's C LIBRARY, zoned (_zone_times inlined) and encoded in one loop. An event
        that is not NXLog CE's (no c_logdata) goes through record()."""
        names, get = library.get_logdata_field_names, library.get_logdata_field
        encode, batch_format, zoned = self.encode, self.batch_format, _zoned

        def write_line(event):
            try:
                c_module, c_logdata = event.module.c_module, event.c_logdata
            except AttributeError:
                return append(*self.record(event))
            fields, received = {}, None
            for name in names(c_module, c_logdata):
                value = get(c_module, c_logdata, name)
                if type(value) is str and len(value) == 19 and value[10] == " ":
                    if name == RECEIVED:
                        received = value
                    value = zoned(value)
                fields[name] = value
            if received is None:  # missing, or not a time NXLog gives
                received = fields.get(RECEIVED)
            append(batch_format, ("".join(encode(fields, 0)) + "\n").encode(), received)
        return write_line

    def record(self, event):
        """(body format, bytes, EventReceivedTime as NXLog gives it) of EVENT: an object's
        body, or a batch's line where line_writer cannot read the fields itself."""
        if self.batching:
            fields = event_fields(event)
            received = fields.get(RECEIVED)
            return self.batch_format, \
                ("".join(self.encode(_zone_times(fields), 0)) + "\n").encode(), received
        if self.settings.FORMAT == "raw":
            raw_event = event.get_field("raw_event")
            if raw_event is not None:
                return "raw", raw_bytes(raw_event), event.get_field(RECEIVED)
            self.log.limited("no raw_event", self.log.warning, "an event without raw_event is "
                             "stored as json, so that its fields are kept")
        fields = event_fields(event)
        received = fields.get(RECEIVED)
        if self.settings.FORMAT == "pickle":
            return "pickle", _pickle(fields), received
        return "json", self.json_text(_zone_times(fields)).encode(), received
