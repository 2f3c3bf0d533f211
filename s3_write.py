"""NXLog om_python output: stores each event in Amazon S3 or any S3-compatible store.

    <Output s3>
        Module      om_python
        PythonCode  /etc/nxlog/s3_write.py
    </Output>

NXLog calls write_data(event) for every event. The event becomes the object
SERVER/YYYY-MM-DD/HH.MM.SS.N in BUCKET: the event's EventReceivedTime (in UTC unless KEY_TIME
is local) with '.' for ':', and N counting the objects of that second from 1. Objects are
written with If-None-Match: *, so an existing object is never overwritten: a taken key moves
on to the next free counter.

Settings are below; each one can also be set without editing this file, through the
environment variable NXLOG_S3_<NAME> (NXLOG_S3_BUCKET, NXLOG_S3_FORMAT, ...). Credentials,
region and endpoint come from the standard AWS chain (AWS_PROFILE, AWS_ENDPOINT_URL,
~/.aws/config, instance roles), never from this file. Needs Python 3.8+ and boto3.
"""

# ---- Settings ----------------------------------------------------------------------------
BUCKET = "my-log-archive"  # an existing bucket; this script never creates or changes it
SERVER = ""                # key prefix: this server's or service's name; empty: the host name
KEY_TIME = "utc"           # time in the key: utc, or local (as the old scripts did)
FORMAT = "raw"             # raw: raw_event as UTF-8; json: all fields; pickle: all fields
                           # (pickle only for old consumers: readers must opt in to it)
COMPRESSION = "none"       # none or gzip
RETRY_MODE = "standard"    # botocore retry mode: standard or adaptive
RETRY_ATTEMPTS = 5         # attempts per S3 request, the first one included
CONNECT_TIMEOUT = 10       # seconds
READ_TIMEOUT = 60          # seconds
# ---- End of settings ---------------------------------------------------------------------

import base64
import collections
import gzip
import json
import os
import pickle
import re
import socket
import time

import boto3
import botocore
import nxlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

METADATA_FORMAT = "nxlog-s3-format"  # x-amz-meta-nxlog-s3-format: raw, json or pickle
METADATA_COMPRESSION = "nxlog-s3-compression"  # x-amz-meta-nxlog-s3-compression: none, gzip
CONTENT_TYPES = {"raw": "text/plain; charset=utf-8", "json": "application/json",
                 "pickle": "application/x-python-pickle"}
OLDEST_BOTOCORE = (1, 35, 16)  # the first that sends If-None-Match on PutObject
MAX_KEY_CONFLICTS = 100  # taken keys in a row before an event is given up as unstorable
REMEMBERED_SECONDS = 4096  # seconds whose last counter is kept in memory


# ---- Shared with s3_read.py: tests/test_shared_code.py keeps the two copies identical ----
SCRIPT = os.path.splitext(os.path.basename(__file__))[0]


class ConfigError(ValueError):
    """A setting that cannot work: the module refuses to start, naming the setting."""


def _choice(*allowed):
    def parse(text):
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError("use one of: %s" % ", ".join(allowed))
        return value
    return parse


def _number(kind, minimum, maximum=None):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError("not a number") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError("must be from %s to %s" % (minimum, maximum) if maximum is not None
                             else "must be at least %s" % minimum)
        return value
    return parse


def _bucket(text):
    value = text.strip()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$", value):
        raise ValueError("not a bucket name")
    return value


def _server(text):
    """A key prefix that stays one path segment: no '/', no '..', no control characters."""
    value = text.strip() or socket.gethostname().split(".")[0]
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$", value) or ".." in value:
        raise ValueError("use letters, digits, '.', '_' and '-' only, starting with a letter "
                         "or digit (it becomes the key prefix SERVER/)")
    return value


def _setting(name, parse):
    """The setting NAME: NXLOG_S3_NAME from the environment, else the value at the top."""
    variable = "NXLOG_S3_" + name
    text = os.environ.get(variable)
    where = variable if text is not None else "%s at the top of %s" % (name, __file__)
    if text is None:
        text = str(globals()[name])
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError("%s: %s=%r is not valid: %s" % (SCRIPT, where, text, exc)) from None


_client = None


def _s3():
    """The module instance's one S3 client, created on first use."""
    global _client
    if _client is None:
        config = Config(retries={"mode": RETRY_MODE, "total_max_attempts": RETRY_ATTEMPTS},
                        connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT)
        _client = boto3.session.Session().client("s3", config=config)
    return _client


def _error_code(exc):
    return exc.response.get("Error", {}).get("Code", "")
# ---- End of the shared code --------------------------------------------------------------


class StoreError(RuntimeError):
    """An event that could not be stored. NXLog logs this message and drops the event."""

    def __init__(self, key, reason):
        RuntimeError.__init__(self, "%s: could not store the event as s3://%s/%s: %s"
                              % (SCRIPT, BUCKET, key, reason))


BUCKET = _setting("BUCKET", _bucket)
SERVER = _setting("SERVER", _server)
KEY_TIME = _setting("KEY_TIME", _choice("utc", "local"))
FORMAT = _setting("FORMAT", _choice("raw", "json", "pickle"))
COMPRESSION = _setting("COMPRESSION", _choice("none", "gzip"))
RETRY_MODE = _setting("RETRY_MODE", _choice("standard", "adaptive"))
RETRY_ATTEMPTS = _setting("RETRY_ATTEMPTS", _number(int, 1))
CONNECT_TIMEOUT = _setting("CONNECT_TIMEOUT", _number(float, 0.1))
READ_TIMEOUT = _setting("READ_TIMEOUT", _number(float, 0.1))


def _check_botocore(version):
    """Refuses a botocore too old for conditional writes (Debian 12 packages 1.29)."""
    found = tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
    if found < OLDEST_BOTOCORE:
        raise ConfigError("%s: botocore %s cannot write objects conditionally (If-None-Match), "
                          "so it could overwrite objects; install boto3 1.35.16 or newer for "
                          "the Python NXLog runs (see README.md)" % (SCRIPT, version))


_check_botocore(botocore.__version__)


# ---- S3 ----------------------------------------------------------------------------------

_last_counter = collections.OrderedDict()  # "SERVER/YYYY-MM-DD/HH.MM.SS" -> last N used


def _highest_counter(second):
    """The highest N among the objects SECOND.N that exist now."""
    pattern = re.compile(re.escape(second) + r"\.([0-9]+)$")
    highest = 0
    pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=second + ".")
    for page in pages:
        for item in page.get("Contents", ()):
            match = pattern.match(item["Key"])
            if match:
                highest = max(highest, int(match.group(1)))
    return highest


def _remember_counter(second, counter):
    _last_counter[second] = counter
    _last_counter.move_to_end(second)
    if len(_last_counter) > REMEMBERED_SECONDS:
        _last_counter.popitem(last=False)


def _put_new_object(second, body, headers):
    """Stores BODY under the first free key SECOND.N and returns that key.

    If-None-Match: * makes S3 refuse (412) a key that exists, whoever wrote it: after a
    restart in the same second, or beside another writer with the same SERVER. A refused
    key moves on past the highest counter listed for that second.
    """
    counter = _last_counter.get(second, 0) + 1
    for _ in range(MAX_KEY_CONFLICTS):
        key = "%s.%d" % (second, counter)
        try:
            _s3().put_object(Bucket=BUCKET, Key=key, Body=body, IfNoneMatch="*", **headers)
        except ClientError as exc:
            code = _error_code(exc)
            if code == "PreconditionFailed":
                counter = max(counter, _highest_counter(second)) + 1
                continue
            if code == "ConditionalRequestConflict":  # a concurrent write to KEY: ask again
                continue
            raise StoreError(key, "%s (%s)" % (exc, code)) from None
        except BotoCoreError as exc:
            raise StoreError(key, exc) from None
        _remember_counter(second, counter)
        return key
    raise StoreError(key, "%d keys in a row were taken by other writers" % MAX_KEY_CONFLICTS)


# ---- Events ------------------------------------------------------------------------------

def _key_second(received):
    """SERVER/YYYY-MM-DD/HH.MM.SS of EventReceivedTime, a local-time string in NXLog.

    The current time stands in for a missing or unparsable value.
    """
    try:
        stamp = time.strptime(received, "%Y-%m-%d %H:%M:%S")
        epoch = time.mktime(stamp)
    except (TypeError, ValueError, OverflowError):
        epoch = time.time()
    stamp = time.localtime(epoch) if KEY_TIME == "local" else time.gmtime(epoch)
    return "%s/%s" % (SERVER, time.strftime("%Y-%m-%d/%H.%M.%S", stamp))


def _field_names(event):
    names = getattr(event, "field_names", None) or event.get_names  # current, else legacy API
    return names()


def _fields(event):
    return {name: event.get_field(name) for name in _field_names(event)}


def _json_value(value):
    """JSON for the one field type json cannot take: binary fields become base64 text."""
    if isinstance(value, (memoryview, bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def _pickle_fields(event):
    fields = _fields(event)
    for name, value in fields.items():
        if isinstance(value, memoryview):
            fields[name] = bytes(value)
    return pickle.dumps(fields, protocol=2)


def _raw_bytes(value):
    if isinstance(value, (memoryview, bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def _body_format(event):
    """FORMAT, except that raw falls back to json for an event without raw_event."""
    if FORMAT == "raw" and event.get_field("raw_event") is None:
        nxlog.log_warning("s3_write: an event without raw_event is stored as json, "
                          "so that its fields are kept")
        return "json"
    return FORMAT


def _encode(event):
    """The object's body and headers: Content-Type, Content-Encoding and our metadata."""
    body_format = _body_format(event)
    if body_format == "raw":
        body = _raw_bytes(event.get_field("raw_event"))
    elif body_format == "json":
        body = json.dumps(_fields(event), default=_json_value, separators=(",", ":")).encode()
    else:
        body = _pickle_fields(event)
    headers = {"ContentType": CONTENT_TYPES[body_format],
               "Metadata": {METADATA_FORMAT: body_format, METADATA_COMPRESSION: COMPRESSION}}
    if COMPRESSION == "gzip":
        body = gzip.compress(body, mtime=0)
        headers["ContentEncoding"] = "gzip"
    return body, headers


def write_data(event):
    """Called by NXLog for each event. Raises StoreError (NXLog logs it) if S3 refuses."""
    body, headers = _encode(event)
    _put_new_object(_key_second(event.get_field("EventReceivedTime")), body, headers)


nxlog.log_info("s3_write: events go to s3://%s/%s/ (format %s, compression %s, key time %s)"
               % (BUCKET, SERVER, FORMAT, COMPRESSION, KEY_TIME))
