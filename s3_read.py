"""NXLog im_python input: reads back the events that s3_write.py stored in S3.

    <Input s3>
        Module      im_python
        PythonCode  /etc/nxlog/s3_read.py
    </Input>

NXLog calls read_data(module) (`Call read_event` works too, for old configurations). Each
call lists the new objects under SERVER/ in BUCKET (list_objects_v2, StartAfter the
checkpoint), posts their events in key order (objects of one second by their counter as a
number: .2 before .10), records each object in the CHECKPOINT file, and schedules the next call:
at once while more is waiting, after POLL_INTERVAL seconds once it has caught up.

The checkpoint is written atomically after each object, so a restart, even after a crash,
resumes where the reader stopped (an event may be posted twice, never lost). Delete the file
to read everything again. A plain-text lastkey.log from the old scripts is accepted.

Settings are below; each one can also be set without editing this file, through the
environment variable NXLOG_S3_<NAME>. Credentials, region and endpoint come from the standard
AWS chain (AWS_PROFILE, AWS_ENDPOINT_URL, ~/.aws/config, instance roles), never from this file.
"""

# ---- Settings ----------------------------------------------------------------------------
BUCKET = "my-log-archive"   # the bucket s3_write.py writes to; never created or changed here
SERVER = ""                 # the SERVER whose events to read; empty: this machine's host name
CHECKPOINT = "lastkey.log"  # where the reader keeps its place; relative: NXLog's SpoolDir
POLL_INTERVAL = 10          # seconds between two looks at the bucket once caught up
MAXKEYS = 1000              # keys per list request (S3 gives at most 1000)
MAX_OBJECTS_PER_CALL = 100  # objects one read_data call posts before NXLog gets its turn
ALLOW_PICKLE = False        # read pickled objects: only for a bucket whose writers you trust
RETRY_MODE = "standard"     # botocore retry mode: standard or adaptive
RETRY_ATTEMPTS = 5          # attempts per S3 request, the first one included
CONNECT_TIMEOUT = 10        # seconds
READ_TIMEOUT = 60           # seconds
# ---- End of settings ---------------------------------------------------------------------

import gzip
import itertools
import json
import os
import pickle
import re
import socket
import tempfile
import traceback

import boto3
import nxlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

try:
    import zstandard
except ImportError:
    zstandard = None

METADATA_FORMAT = "nxlog-s3-format"
METADATA_COMPRESSION = "nxlog-s3-compression"
GZIP_MAGIC = b"\x1f\x8b"
MORE_WAITING_DELAY = 0.01  # seconds to the next call when a call stopped at its bound
CHECKPOINT_VERSION = 1
# A key of the scheme: the second (with its trailing '.') and the counter.
SCHEME_KEY = re.compile(r"^(.+/[0-9]{4}-[0-9]{2}-[0-9]{2}/[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.)([0-9]+)$")

# ---- Shared with s3_write.py: tests/test_shared_code.py keeps the two copies identical ----
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


def _path(text):
    if not text.strip():
        raise ValueError("must name a file or folder")
    return text.strip()


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


def _flag(text):
    value = text.strip().lower()
    if value not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        raise ValueError("use true or false")
    return value in ("true", "yes", "1", "on")


BUCKET = _setting("BUCKET", _bucket)
SERVER = _setting("SERVER", _server)
CHECKPOINT = _setting("CHECKPOINT", _path)
POLL_INTERVAL = _setting("POLL_INTERVAL", _number(float, 0.01))
MAXKEYS = _setting("MAXKEYS", _number(int, 1, 1000))
MAX_OBJECTS_PER_CALL = _setting("MAX_OBJECTS_PER_CALL", _number(int, 1))
ALLOW_PICKLE = _setting("ALLOW_PICKLE", _flag)
RETRY_MODE = _setting("RETRY_MODE", _choice("standard", "adaptive"))
RETRY_ATTEMPTS = _setting("RETRY_ATTEMPTS", _number(int, 1))
CONNECT_TIMEOUT = _setting("CONNECT_TIMEOUT", _number(float, 0.1))
READ_TIMEOUT = _setting("READ_TIMEOUT", _number(float, 0.1))
PREFIX = SERVER + "/"  # with the slash: SERVER01 must not read SERVER010's objects


class CheckpointError(RuntimeError):
    """The checkpoint file cannot be used: the reader reads nothing until it is fixed."""


class UndecodableObject(ValueError):
    """An object whose content cannot be turned into events; it stays in the bucket."""


# ---- Order and position ------------------------------------------------------------------

def _order(key):
    """Where KEY stands in reading order: (its second, its counter as a number).

    S3 lists keys as text (.1, .10, .2); objects of one second are read by counter.
    A key outside the scheme is its own group, read in text order.
    """
    match = SCHEME_KEY.match(key)
    return (match.group(1), int(match.group(2))) if match else (key, -1)


class Position(object):
    """How far the reader got: the last group (second) reached and the counters read in it.

    Objects of that second that land later (a counter 10 after .1 to .9 were read) are still
    found, because the next listing starts at the beginning of that second.
    """

    def __init__(self, group=None, done=()):
        self.group = group
        self.done = set(done)

    def start_after(self):
        """A key that sorts before every object not read yet."""
        if self.group is None:
            return None
        return self.group[:-1] if self.group.endswith(".") else self.group

    def is_read(self, key):
        group, counter = _order(key)
        return self.group is not None and (
            group < self.group or (group == self.group and counter in self.done))

    def mark_read(self, key):
        group, counter = _order(key)
        if group != self.group:
            self.group, self.done = group, set()
        self.done.add(counter)

    def to_json(self):
        return {"version": CHECKPOINT_VERSION, "bucket": BUCKET, "server": SERVER,
                "group": self.group, "done": sorted(self.done)}


# ---- The checkpoint file -----------------------------------------------------------------

def _position_from_json(data):
    if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
        raise ValueError("not a checkpoint of version %d" % CHECKPOINT_VERSION)
    if (data.get("bucket"), data.get("server")) != (BUCKET, SERVER):
        raise CheckpointError(
            "%s: checkpoint %s belongs to s3://%s/%s/, not s3://%s/%s/: give each reader its "
            "own file with NXLOG_S3_CHECKPOINT" % (SCRIPT, os.path.abspath(CHECKPOINT),
                                                  data.get("bucket"), data.get("server"),
                                                  BUCKET, SERVER))
    group, done = data.get("group"), data.get("done")
    if not (group is None or isinstance(group, str)) or not isinstance(done, list) or \
            not all(isinstance(counter, int) for counter in done):
        raise ValueError("its group or done list is malformed")
    return Position(group, done)


def _position_from_last_key(last_key):
    """The old scripts' lastkey.log: they read keys in text order up to and including LAST_KEY."""
    if not last_key.startswith(PREFIX):
        raise ValueError("its key %r is not under %s" % (last_key, PREFIX))
    group, _ = _order(last_key)
    position = Position()
    for key in _list_keys(group, None):
        if key > last_key:
            break
        position.mark_read(key)
    position.mark_read(last_key)
    return position


def _load_position():
    """The position in CHECKPOINT; a missing file means: start from the beginning."""
    try:
        with open(CHECKPOINT, "rb") as handle:
            text = handle.read().decode("utf-8").strip()
    except FileNotFoundError:
        return Position()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError("%s: cannot read checkpoint %s: %s"
                              % (SCRIPT, os.path.abspath(CHECKPOINT), exc)) from None
    try:
        if text.startswith("{"):
            return _position_from_json(json.loads(text))
        if text and "\n" not in text:
            old = re.match(r"^b'(.*)'$", text)  # the old scripts sometimes wrote bytes' repr
            return _position_from_last_key(old.group(1) if old else text)
        raise ValueError("empty" if not text else "neither JSON nor one key")
    except ValueError as exc:
        where = os.path.abspath(CHECKPOINT)
        raise CheckpointError("%s: checkpoint %s is broken (%s); fix it, or delete it to read "
                              "s3://%s/%s from the beginning"
                              % (SCRIPT, where, exc, BUCKET, PREFIX)) from None


def _fsync_directory(directory):
    if hasattr(os, "O_DIRECTORY"):  # not on Windows, where a rename is durable enough
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomically(path, data):
    """Temporary file, fsync, rename: PATH holds the old data or the new, whole, at any crash.
    The file is readable by its owner only."""
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _save_position(position):
    path = os.path.abspath(CHECKPOINT)
    try:
        _write_atomically(path, position.to_json())
    except OSError as exc:
        raise CheckpointError("%s: cannot write checkpoint %s: %s; it keeps its previous "
                              "content, so objects after it may be posted again after a restart"
                              % (SCRIPT, path, exc)) from None


# ---- Listing and decoding ----------------------------------------------------------------

def _list_keys(prefix, start_after):
    """Every key under PREFIX after START_AFTER, in S3's (text) order, a page at a time."""
    arguments = {"Bucket": BUCKET, "Prefix": prefix, "PaginationConfig": {"PageSize": MAXKEYS}}
    if start_after:
        arguments["StartAfter"] = start_after
    for page in _s3().get_paginator("list_objects_v2").paginate(**arguments):
        for item in page.get("Contents", ()):
            yield item["Key"]


def _unread_keys(position):
    """Keys not read yet, in reading order: a second is sorted by counter once all of it
    was listed, even where it spans two list pages."""
    keys = _list_keys(PREFIX, position.start_after())
    for _, group in itertools.groupby(keys, key=lambda key: _order(key)[0]):
        for key in sorted(group, key=_order):
            if not position.is_read(key):
                yield key


def _text(body, key):
    try:
        return body.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        nxlog.log_warning("%s: s3://%s/%s is not valid UTF-8; its undecodable bytes are kept "
                          "as \\x escapes" % (SCRIPT, BUCKET, key))
        return body.decode("utf-8", "backslashreplace")


def _fields_from(value, what):
    if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
        raise UndecodableObject("%s does not hold an object of fields" % what)
    return value


def _json_fields(text, what):
    try:
        fields = json.loads(text.decode("utf-8"))
    except ValueError as exc:  # also UnicodeDecodeError and json's JSONDecodeError
        raise UndecodableObject("invalid JSON in %s: %s" % (what, exc)) from None
    return _fields_from(fields, what)


def _events(key, body, metadata):
    """The events in one object, as field dicts, by what its metadata says it holds.

    No metadata: an object of the old scripts or another tool, one raw event.
    """
    body_format = metadata.get(METADATA_FORMAT, "raw")
    if body_format == "raw":
        return [{"raw_event": _text(body, key)}]
    if body_format == "json":
        return [_json_fields(body, "its JSON")]
    if body_format == "jsonl":  # a batch: one JSON object per line
        return [_json_fields(line, "line %d" % number)
                for number, line in enumerate(body.splitlines(), 1) if line]
    if body_format == "pickle":
        if not ALLOW_PICKLE:
            raise UndecodableObject("it is a pickle, and unpickling runs code: set "
                                    "NXLOG_S3_ALLOW_PICKLE=true only if you trust every writer "
                                    "to this bucket")
        try:
            fields = pickle.loads(body)
        except Exception as exc:  # unpickling can raise anything
            raise UndecodableObject("invalid pickle: %s" % exc) from None
        return [_fields_from(fields, "the pickle")]
    raise UndecodableObject("unknown %s %r (written by a newer s3_write.py?)"
                            % (METADATA_FORMAT, body_format))


def _decompressed(body, response):
    metadata = response.get("Metadata", {})
    compression = metadata.get(METADATA_COMPRESSION)
    if compression is None:  # not ours: trust Content-Encoding, or the gzip signature
        gzipped = response.get("ContentEncoding") == "gzip" or body[:2] == GZIP_MAGIC
        compression = "gzip" if gzipped else "none"
    if compression == "none":
        return body
    if compression == "zstd":
        return _unzstd(body)
    if compression != "gzip":
        raise UndecodableObject("unknown %s %r" % (METADATA_COMPRESSION, compression))
    try:
        return gzip.decompress(body)
    except (OSError, EOFError) as exc:
        raise UndecodableObject("broken gzip: %s" % exc) from None


def _unzstd(body):
    if zstandard is None:
        raise UndecodableObject("it is zstd-compressed: install the zstandard package for "
                                "the Python NXLog runs")
    try:
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    except zstandard.ZstdError as exc:
        raise UndecodableObject("broken zstd: %s" % exc) from None


def _fetch_events(key):
    """The events of KEY. Raises UndecodableObject, or botocore's errors to try again later."""
    response = _s3().get_object(Bucket=BUCKET, Key=key)
    body = _decompressed(response["Body"].read(), response)
    return _events(key, body, response.get("Metadata", {}))


# ---- NXLog -------------------------------------------------------------------------------

def _post(module, fields):
    new_event = getattr(module, "logdata_new", None) or module.new_logdata  # current, else legacy
    event = new_event()
    for name, value in fields.items():
        event.set_field(name, value)
    event.post()


def _schedule(module, delay):
    set_timer = getattr(module, "set_read_timer", None) or module.add_read_event
    set_timer(delay)


_position = None  # loaded from CHECKPOINT at the first call


def _read_objects(module):
    """Posts the events of up to MAX_OBJECTS_PER_CALL new objects; True if more are waiting."""
    global _position
    if _position is None:
        _position = _load_position()
    for count, key in enumerate(_unread_keys(_position)):
        if count == MAX_OBJECTS_PER_CALL:
            return True
        try:
            events = _fetch_events(key)
        except UndecodableObject as exc:
            nxlog.log_error("%s: skipped s3://%s/%s: %s; the object stays in the bucket"
                            % (SCRIPT, BUCKET, key, exc))
            events = []
        except ClientError as exc:
            if _error_code(exc) != "NoSuchKey":
                raise
            nxlog.log_warning("%s: s3://%s/%s was deleted before it could be read"
                              % (SCRIPT, BUCKET, key))
            events = []
        for fields in events:
            _post(module, fields)
        _position.mark_read(key)
        _save_position(_position)
    return False


def read_data(module):
    """Called by NXLog. Schedules exactly one next call, whatever happens in this one."""
    delay = POLL_INTERVAL
    try:
        if _read_objects(module):
            delay = MORE_WAITING_DELAY
    except CheckpointError as exc:
        nxlog.log_error("%s (trying again in %s s)" % (exc, POLL_INTERVAL))
    except (BotoCoreError, ClientError) as exc:
        nxlog.log_error("%s: cannot read s3://%s/%s now: %s; trying again in %s s"
                        % (SCRIPT, BUCKET, PREFIX, exc, POLL_INTERVAL))
    except Exception:
        nxlog.log_error("%s: unexpected error, trying again in %s s: %s"
                        % (SCRIPT, POLL_INTERVAL, traceback.format_exc()))
    finally:
        _schedule(module, delay)


read_event = read_data  # the old scripts' name, for configurations that say `Call read_event`

nxlog.log_info("%s: reading s3://%s/%s, checkpoint %s"
               % (SCRIPT, BUCKET, PREFIX, os.path.abspath(CHECKPOINT)))
