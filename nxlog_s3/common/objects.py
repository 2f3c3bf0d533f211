"""The object format, for the writer, the reader and the commands alike: the key scheme,
the suffixes, the metadata names and the times in keys and fields."""

import base64
import datetime
import re
import time

# The object's metadata (x-amz-meta-*), as s3_write.py writes it and the reader, audit and
# replay read it.
METADATA_VERSION = "nxlog-s3-version"  # OBJECT_VERSION: the layout of these entries
METADATA_FORMAT = "nxlog-s3-format"  # raw, json, pickle, jsonl or parquet
METADATA_COMPRESSION = "nxlog-s3-compression"  # none, gzip or zstd
METADATA_EVENTS = "nxlog-s3-events"  # how many events the object holds
METADATA_FIRST = "nxlog-s3-first"  # its first event's time, UTC (utc_text)
METADATA_LAST = "nxlog-s3-last"  # its last event's time, UTC
METADATA_BATCH = "nxlog-s3-batch"  # the batch's id: an upload retried is known by it
METADATA_TIMES = "nxlog-s3-times"  # zoned: datetime fields are ISO 8601 with their offset
METADATA_RELEASE = "nxlog-s3-release"  # the VERSION of s3_write.py that stored it
GZIP_MAGIC = b"\x1f\x8b"
SECOND_FORMAT = "%Y-%m-%d/%H.%M.%S"  # a key's second, after SERVER/ (KEY_TIME: UTC or local)


def utc_text(epoch):
    """EPOCH as the scripts write times out: UTC, with its zone (2026-11-28T10:00:00Z)."""
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % time.gmtime(epoch)[:6]  # %Y: "1" for year 1


STATE_PREFIX = "_nxlog-s3/"  # what readers with COORDINATION=s3 share: no server's prefix,
                             # as a server's name starts with a letter or a digit


# What a key's suffix says an object holds (see KEY_SUFFIX), and a key of the scheme: SERVER,
# its second, its counter, and such a suffix or none.
FORMAT_SUFFIXES = {"jsonl": ".jsonl", "json": ".json", "raw": ".txt", "pickle": ".pickle",
                   "parquet": ".parquet"}
COMPRESSION_SUFFIXES = {"none": "", "gzip": ".gz", "zstd": ".zst"}
SCHEME_KEY = re.compile(
    r"^([^/]+)/([0-9]{4}-[0-9]{2}-[0-9]{2}/[0-9]{2}\.[0-9]{2}\.[0-9]{2})\.([0-9]+)"
    r"((?:%s)(?:%s)?)?$" % ("|".join(re.escape(suffix) for suffix in FORMAT_SUFFIXES.values()),
                            "|".join(re.escape(suffix) for suffix in
                                     COMPRESSION_SUFFIXES.values() if suffix)))


def second_prefix(server, second):
    """SERVER/YYYY-MM-DD/HH.MM.SS: what the keys of SERVER's objects of one SECOND (as
    SECOND_FORMAT writes it) start with."""
    return "%s/%s" % (server, second)


def scheme_key(second_prefix, counter, suffix=""):
    """The key of the scheme: SECOND_PREFIX.COUNTER, then SUFFIX (.jsonl.gz, or none)."""
    return "%s.%d%s" % (second_prefix, counter, suffix)


def key_second(match):
    """SERVER/YYYY-MM-DD/HH.MM.SS of a key SCHEME_KEY matched."""
    return second_prefix(match.group(1), match.group(2))


NXLOG_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")
ZONED_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:"
                        r"[0-9]{2}$")


def instant(text):
    """The epoch of TEXT, an ISO 8601 time (NXLog's 2026-11-28 10:00:00 too) with its zone
    (+09:00, Z), or without one in this host's local time; None if it is no such time."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z")
                                                 else text)
        if moment.tzinfo is not None:
            return moment.timestamp()
        return time.mktime(moment.timetuple()) + moment.microsecond / 1e6  # as far as mktime
    except (ValueError, OverflowError, OSError):                          # goes (9999 too)
        return None


def json_value(value):
    """JSON for what json cannot take: binary (a field, a pickle's bytes) as base64 text,
    anything else (a datetime) as its text."""
    if isinstance(value, (memoryview, bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def raw_bytes(value):
    """A raw_event as the bytes of a raw object or line: binary as it is, text in UTF-8 (lone
    surrogates kept)."""
    if isinstance(value, (memoryview, bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


MORE_FIELDS = "nxlog-s3-more-fields"  # Parquet schema metadata: the column holding, as a
OBJECT_VERSION = "1"  # x-amz-meta-nxlog-s3-version: the layout of these metadata entries
CONTENT_TYPES = {"raw": "text/plain; charset=utf-8", "json": "application/json",
                 "pickle": "application/x-python-pickle", "jsonl": "application/x-ndjson",
                 "parquet": "application/vnd.apache.parquet"}


def _second_of(key):
    """The second KEY belongs to, for grouping a listing: a key off the scheme is its own."""
    match = SCHEME_KEY.match(key)
    return match.group(2) if match else key
