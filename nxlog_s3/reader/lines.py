"""JSON lines and the budget every decoding works within: what an object may expand to."""

import functools
import json
import json.scanner
import time

from nxlog_s3.common.errors import UndecodableObject
from nxlog_s3.common.objects import ZONED_TIME, instant

CHUNK_BYTES = 4 << 20  # a chunk of events decoded ahead holds what this many bytes make


_SCAN_JSON = json.scanner.make_scanner(json.JSONDecoder())  # what raw_decode calls (in C)


def _where(line):
    """Where in an object a problem is, for its message: in line number LINE, or the whole."""
    return "line %d" % line if line else "its body"


def _parsed_json(text):
    """json.loads(TEXT), a third faster for what a batch line is (JSON, then its newline):
    its scanner called directly; anything else goes through json.loads itself, which also
    words the errors."""
    try:
        value, end = _SCAN_JSON(text, 0)
        if end == len(text) or text[end:] == "\n":
            return value
    except (StopIteration, ValueError):  # StopIteration: no JSON value at all
        pass
    return json.loads(text)


def _json_fields(body, line=None):
    """The fields in BODY (line number LINE, or the whole object), UTF-8 JSON text. Decoded
    before parsing: json.loads would spend as long finding out which Unicode encoding bytes
    are in as parsing them."""
    try:
        fields = _parsed_json(body.decode("utf-8", "surrogatepass"))
    except ValueError as exc:  # also UnicodeDecodeError and json's JSONDecodeError
        raise UndecodableObject("invalid JSON in %s: %s" % (_where(line), exc)) from None
    except RecursionError:
        raise UndecodableObject("JSON nested too deep to parse in %s" % _where(line)) from None
    if not isinstance(fields, dict):  # JSON's names are always text
        raise UndecodableObject("%s does not hold an object of fields" % _where(line))
    return fields


@functools.lru_cache(maxsize=4096)
def _nxlog_time(zoned):
    """A zoned time (2026-11-28T11:28:18+09:00) as NXLog gives a datetime field to Python:
    the same instant in this host's local time, with no zone (2026-11-28 11:28:18 in Tokyo,
    2026-11-28 02:28:18 in London); ZONED itself if it is no such time. Cached: the events
    of a second share their times."""
    epoch = instant(zoned) if ZONED_TIME.match(zoned) else None
    return zoned if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _nxlog_times(fields):
    """FIELDS, the datetime fields the writer stored with their zone as NXLog gives them."""
    for name, value in fields.items():
        if type(value) is str and len(value) == 25 and value[10] == "T":  # as in the poster
            fields[name] = _nxlog_time(value)  # cached: whether it is one is looked up too
    return fields


class DecodeBudget(object):
    """How much one object may decode to: MAX_EXPANSION times its stored size, or
    MAX_EVENT_BYTES if that is more (a batch of s3_write.py never comes near). More is taken
    for what it most likely is, a decompression bomb. MAX_EVENT_BYTES=0 lifts both limits.
    DECODED counts what its decoding made so far; STOPPED, set once the object is closed,
    ends a decoding no one waits for."""

    def __init__(self, settings, stored_size):
        self.limit = float("inf") if not settings.MAX_EVENT_BYTES else max(
            settings.MAX_EVENT_BYTES, settings.MAX_EXPANSION * stored_size)
        self.expansion = settings.MAX_EXPANSION
        self.decoded = 0
        self.stopped = False
        self.bound = self.limit  # what take() compares with: -1 once stopped

    def take(self, size):
        """Counts SIZE bytes decoded (every line passes here: one comparison)."""
        self.decoded += size
        if self.decoded > self.bound:
            raise UndecodableObject("closed while it was decoded") if self.stopped else \
                self.refused()

    def stop(self):
        self.stopped, self.bound = True, -1

    def beyond(self, size):
        return size > self.limit

    def refused(self):
        return UndecodableObject(
            "it decompresses to more than %d bytes, more than MAX_EXPANSION=%d times its "
            "size (a decompression bomb?); raise NXLOG_S3_MAX_EXPANSION, or set "
            "NXLOG_S3_MAX_EVENT_BYTES=0 for no limit" % (self.limit, self.expansion))


def _too_large(where, limit):
    return "%s is larger than MAX_EVENT_BYTES=%d once decompressed (a decompression bomb?); " \
        "raise NXLOG_S3_MAX_EVENT_BYTES, or set it to 0 for no limit" % (where, limit)
