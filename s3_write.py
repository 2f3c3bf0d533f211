"""NXLog om_python output: ships events to Amazon S3 or any S3-compatible store, losing none.

    <Output s3>
        Module      om_python
        PythonCode  /etc/nxlog/s3_write.py
    </Output>

NXLog calls write_data(event) for every event. Before it returns, the event is on disk in
SPOOL_DIR; background threads upload what the spool holds and delete it only once S3 has
confirmed it. NXLog gives an output no shutdown hook and drops an event whose write_data
raises, so the spool is what keeps events across restarts, crashes and S3 outages: at every
start the script uploads what an earlier run left there, first.

Objects are named SERVER/YYYY-MM-DD/HH.MM.SS.N after their (first) event's EventReceivedTime
(UTC unless KEY_TIME is local; this host's clock for a time it cannot read or one more than
MAX_AHEAD ahead of it; never before a key it used already), N counting the objects of that
second from 1. By default each
event is one object (as the old scripts did); BATCH_EVENTS above 1 stores many events per
object as gzip-compressed JSON lines, thousands of times cheaper. Every upload is conditional
(If-None-Match: *): an object is never overwritten, and an upload retried after it landed is
recognised by its batch id and not stored twice.

Settings are below; each one can also be set without editing this file, through the
environment variable NXLOG_S3_<NAME> (NXLOG_S3_BUCKET, NXLOG_S3_BATCH_EVENTS, ...).
Credentials, region and endpoint come from the standard AWS chain (AWS_PROFILE,
AWS_ENDPOINT_URL, ~/.aws/config, instance roles), never from this file. Python 3.8+, boto3.
"""

# ---- Settings ----------------------------------------------------------------------------
BUCKET = "my-log-archive"     # an existing bucket; this script never creates or changes it
SERVER = ""                   # key prefix: this server's or service's name; empty: host name
KEY_TIME = "utc"              # time in the key: utc, or local (as the old scripts did)
MAX_AHEAD = 300               # seconds an EventReceivedTime may lie ahead of this host's clock
                              # and still give the key its time (further: the clock does)
BATCH_EVENTS = 1              # events per object: 1 is one object per event; batches: 10000+
BATCH_BYTES = 8388608         # a batch closes at this many bytes (uncompressed)...
BATCH_AGE = 60                # ...or this many seconds after its first event, whichever first
FORMAT = "raw"                # one event per object: raw (raw_event as UTF-8), json (all
                              # fields) or pickle (old consumers only); batches: JSON lines
COMPRESSION = "auto"          # none, gzip, zstd (needs the zstandard package); auto: none for
                              # one event per object, gzip for batches
SPOOL_DIR = "s3_write.spool"  # events wait here until S3 has them; relative: NXLog's SpoolDir
SPOOL_MAX_BYTES = 1073741824  # the spool's limit; when full...
SPOOL_FULL = "block"          # ...block: write_data waits (NXLog holds events back), or drop:
                              # write_data refuses the event with an error that counts them
FSYNC = "batch"               # event: fsync each event; batch: each batch; os: leave it to the OS
UPLOAD_THREADS = 4            # objects uploaded at the same time (their keys are given in order)
STORAGE_CLASS = ""            # e.g. STANDARD_IA, GLACIER_IR; empty: the bucket's default
SSE = ""                      # server-side encryption: AES256 or aws:kms; empty: the default
SSE_KMS_KEY_ID = ""           # with SSE=aws:kms: the KMS key; empty: the AWS managed key
EXPECTED_BUCKET_OWNER = ""    # an account id: refuse to write to a bucket someone else owns
RETRY_MODE = "standard"       # botocore retry mode: standard or adaptive
RETRY_ATTEMPTS = 5            # attempts per S3 request, the first one included
TLS_VERIFY = True             # check the endpoint's TLS certificate (AWS_CA_BUNDLE names a
                              # private CA); false only for a test endpoint, never in production
CONNECT_TIMEOUT = 10          # seconds
READ_TIMEOUT = 60             # seconds
# ---- End of settings ---------------------------------------------------------------------

import base64
import collections
import errno
import gzip
import io
import json
import os
import pickle
import re
import socket
import stat
import tempfile
import threading
import time
import traceback
import uuid

import boto3
import botocore
import nxlog
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one writer per SPOOL_DIR is up to the user
    fcntl = None
try:
    import zstandard
except ImportError:
    zstandard = None

OBJECT_VERSION = "1"  # x-amz-meta-nxlog-s3-version: the layout of these metadata entries
CONTENT_TYPES = {"raw": "text/plain; charset=utf-8", "json": "application/json",
                 "pickle": "application/x-python-pickle", "jsonl": "application/x-ndjson"}
OLDEST_BOTOCORE = (1, 35, 16)  # the first that sends If-None-Match on PutObject
MAX_KEY_CONFLICTS = 100  # taken keys in a row before a batch waits and tries again later
REMEMBERED_SECONDS = 4096  # seconds whose last counter is kept in memory
IN_MEMORY_UPLOAD = 64 * 1024 * 1024  # larger batches stream through the transfer manager,
# as one PUT up to the 5 GiB one PUT may hold, and as a multipart upload only above that: some
# stores (Ceph's radosgw 16) ignore If-None-Match when a multipart upload completes.
TRANSFER_CONFIG = TransferConfig(multipart_threshold=5 * 1024 ** 3,
                                 multipart_chunksize=64 * 1024 * 1024, use_threads=False)
RETRY_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)  # seconds between upload rounds while S3 fails
LAST_STORED = ".last-stored.json"  # in SPOOL_DIR: the manifest of the latest key stored
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # no quotas on Windows
PERMANENT_ERRORS = {"AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "AllAccessDisabled",
                    "SignatureDoesNotMatch", "InvalidBucketName", "KMS.NotFoundException"}

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


def _flag(text):
    value = text.strip().lower()
    if value not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        raise ValueError("use true or false")
    return value in ("true", "yes", "1", "on")


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


def _new_client(attempts, timeout_cap=None):
    """An S3 client from the standard AWS chain, with botocore's retries and timeouts."""
    config = Config(retries={"mode": RETRY_MODE, "total_max_attempts": attempts},
                    connect_timeout=min(CONNECT_TIMEOUT, timeout_cap or CONNECT_TIMEOUT),
                    read_timeout=min(READ_TIMEOUT, timeout_cap or READ_TIMEOUT),
                    max_pool_connections=max(10, CONNECTIONS))
    return boto3.session.Session().client("s3", config=config,
                                          verify=None if TLS_VERIFY else False)


_client = None
_client_lock = threading.Lock()  # the threads that upload or fetch share one client


def _s3():
    """The module instance's one S3 client, created on first use."""
    global _client
    with _client_lock:
        if _client is None:
            _client = _new_client(RETRY_ATTEMPTS)
    return _client


def _check_connection():
    """At start, one request: missing credentials, or a bucket that does not exist, stop the
    module with one message. Whatever else (S3 unreachable now, no right to HeadBucket) is
    left to the uploads or polls, which report it and retry."""
    if not TLS_VERIFY:
        nxlog.log_warning("%s: TLS_VERIFY is off: whoever sits between this host and S3 can "
                          "read and change what is sent" % SCRIPT)
    try:
        _new_client(1, timeout_cap=5).head_bucket(Bucket=BUCKET)
    except NoCredentialsError:
        raise ConfigError("%s: no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID "
                          "and AWS_SECRET_ACCESS_KEY, for the user NXLog runs as, or give the "
                          "host an instance role" % SCRIPT) from None
    except ClientError as exc:
        if _error_code(exc) in ("404", "NoSuchBucket"):
            raise ConfigError("%s: the bucket %s does not exist (BUCKET, or NXLOG_S3_BUCKET); "
                              "this script never creates one" % (SCRIPT, BUCKET)) from None
    except BotoCoreError:
        pass


def _private_directory(directory, setting, own=False):
    """Makes DIRECTORY (its owner's only) if need be; refuses one this process cannot use,
    or one every user may write to (anyone could plant or swap the files it holds). OWN: a
    folder of the script's alone (SPOOL_DIR), made its owner's only if it was not."""
    where = "%s (%s)" % (os.path.abspath(directory), setting)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        mode = os.stat(directory).st_mode
    except OSError as exc:
        raise ConfigError("%s: cannot use the folder %s: %s" % (SCRIPT, where, exc)) from None
    if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError("%s: the folder %s is not readable and writable by this process "
                          "(the user NXLog runs as)" % (SCRIPT, where))
    if mode & stat.S_IWOTH:
        raise ConfigError("%s: every user may write to the folder %s: chmod o-w it, or choose "
                          "another" % (SCRIPT, where))
    if own and mode & 0o077:
        try:
            os.chmod(directory, 0o700)
        except OSError as exc:
            nxlog.log_warning("%s: cannot make the folder %s its owner's only: %s"
                              % (SCRIPT, where, exc))


def _quoted(key):
    """KEY's address as log lines show it: quoted, with control characters escaped, so that a
    key cannot forge a log line."""
    return repr("s3://%s/%s" % (BUCKET, key))


def _exclusive_lock(path):
    """A descriptor that holds an exclusive lock on PATH (made readable by its owner only), or
    None while another process or instance holds it. Windows has no such locks."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
    return fd


def _fsync_directory(directory):
    """Makes a rename in DIRECTORY durable. Windows has no such call (nor needs it)."""
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomically(path, data, sync=True):
    """Temporary file, fsync, rename, fsync of the folder: at any crash PATH holds its old
    bytes or DATA, whole; readable by its owner only. SYNC=False leaves the fsyncs to the OS."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    if sync:
        _fsync_directory(directory)


LOG_EVERY = 60  # seconds between two log lines about the same lasting problem
_last_logged = {}  # problem -> (when last logged, how often since)


def _log_limited(problem, log, message):
    """Logs MESSAGE at most once every LOG_EVERY seconds for one lasting PROBLEM."""
    now = time.monotonic()
    when, since = _last_logged.get(problem, (None, 0))
    if when is not None and now - when < LOG_EVERY:
        _last_logged[problem] = (when, since + 1)
        return
    if since:
        message += " (%d times since the last such message)" % since
    _last_logged[problem] = (now, 0)
    log("%s: %s" % (SCRIPT, message))


def _error_code(exc):
    return exc.response.get("Error", {}).get("Code", "")


def _utc_text(epoch):
    """EPOCH as the scripts write times out: UTC, with its zone (2026-11-28T10:00:00Z)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
# ---- End of the shared code --------------------------------------------------------------


def _optional(pattern, what):
    def parse(text):
        value = text.strip()
        if value and not re.match("^(?:%s)$" % pattern, value):
            raise ValueError("not %s" % what)
        return value
    return parse


def _sse(text):
    value = text.strip()
    canonical = {"": "", "aes256": "AES256", "aws:kms": "aws:kms"}.get(value.lower())
    if canonical is None:
        raise ValueError("use AES256 or aws:kms, or leave it empty")
    return canonical


BUCKET = _setting("BUCKET", _bucket)
SERVER = _setting("SERVER", _server)
KEY_TIME = _setting("KEY_TIME", _choice("utc", "local"))
MAX_AHEAD = _setting("MAX_AHEAD", _number(int, 0))
BATCH_EVENTS = _setting("BATCH_EVENTS", _number(int, 1))
BATCH_BYTES = _setting("BATCH_BYTES", _number(int, 1))
BATCH_AGE = _setting("BATCH_AGE", _number(float, 0.1))
FORMAT = _setting("FORMAT", _choice("raw", "json", "pickle"))
COMPRESSION = _setting("COMPRESSION", _choice("auto", "none", "gzip", "zstd"))
SPOOL_DIR = _setting("SPOOL_DIR", _path)
SPOOL_MAX_BYTES = _setting("SPOOL_MAX_BYTES", _number(int, 1))
SPOOL_FULL = _setting("SPOOL_FULL", _choice("block", "drop"))
FSYNC = _setting("FSYNC", _choice("event", "batch", "os"))
UPLOAD_THREADS = _setting("UPLOAD_THREADS", _number(int, 1, 64))
STORAGE_CLASS = _setting("STORAGE_CLASS", _optional("[A-Z_]+", "a storage class such as "
                                                     "STANDARD_IA"))
SSE = _setting("SSE", _sse)
SSE_KMS_KEY_ID = _setting("SSE_KMS_KEY_ID", _optional("[A-Za-z0-9:/_+=.,@-]+", "a KMS key id"))
EXPECTED_BUCKET_OWNER = _setting("EXPECTED_BUCKET_OWNER",
                                 _optional("[0-9]{12}", "a 12-digit account id"))
RETRY_MODE = _setting("RETRY_MODE", _choice("standard", "adaptive"))
RETRY_ATTEMPTS = _setting("RETRY_ATTEMPTS", _number(int, 1))
TLS_VERIFY = _setting("TLS_VERIFY", _flag)
CONNECT_TIMEOUT = _setting("CONNECT_TIMEOUT", _number(float, 0.1))
READ_TIMEOUT = _setting("READ_TIMEOUT", _number(float, 0.1))
CONNECTIONS = UPLOAD_THREADS  # the client's connection pool: one per thread that uses it
BATCHING = BATCH_EVENTS > 1
BODY_FORMAT = "jsonl" if BATCHING else FORMAT  # what the object's body holds
if COMPRESSION == "auto":
    COMPRESSION = "gzip" if BATCHING else "none"


def _check_combinations():
    """Settings that are each valid but cannot work together."""
    if BATCHING and FORMAT == "pickle":
        raise ConfigError("%s: FORMAT=pickle cannot be batched: batches are JSON lines; use "
                          "FORMAT=json, or BATCH_EVENTS=1" % SCRIPT)
    if COMPRESSION == "zstd" and zstandard is None:
        raise ConfigError("%s: COMPRESSION=zstd needs the zstandard package for the Python "
                          "NXLog runs (pip install zstandard), or use gzip" % SCRIPT)
    if SSE_KMS_KEY_ID and SSE != "aws:kms":
        raise ConfigError("%s: SSE_KMS_KEY_ID is set, so SSE must be aws:kms" % SCRIPT)


def _check_botocore(version):
    """Refuses a botocore too old for conditional writes (Debian 12 packages 1.29)."""
    found = tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
    if found < OLDEST_BOTOCORE:
        raise ConfigError("%s: botocore %s cannot write objects conditionally (If-None-Match), "
                          "so it could overwrite objects; install boto3 1.35.16 or newer for "
                          "the Python NXLog runs (see README.md)" % (SCRIPT, version))


_check_combinations()
_check_botocore(botocore.__version__)
_check_connection()


# ---- Events -------------------------------------------------------------------------------

def _event_epoch(received):
    """EventReceivedTime (a local-time string in NXLog) as seconds since the epoch; None for
    a missing or unparsable value, or one before 1970."""
    try:
        epoch = time.mktime(time.strptime(received, "%Y-%m-%d %H:%M:%S"))
    except (TypeError, ValueError, OverflowError):
        return None
    return epoch if epoch >= 0 else None


def _key_time(received):
    """The time to key a batch at whose first event was received at RECEIVED: that time,
    unless it is missing, cannot be read or lies more than MAX_AHEAD ahead of this host's clock
    (9999-12-31 would key every later event there, keys never going back): then the clock's,
    with a warning but for a missing one. The event keeps its field as it is."""
    now = time.time()
    epoch = _event_epoch(received)
    if received is None or (epoch is not None and epoch <= now + MAX_AHEAD):
        return now if epoch is None else epoch  # no time at all: the clock's, no warning
    why = "cannot be read as a time since 1970" if epoch is None else \
        "lies more than MAX_AHEAD=%d s ahead of this host's clock" % MAX_AHEAD
    _log_limited("event time", nxlog.log_warning, "EventReceivedTime %r %s: the event is keyed "
                 "at this host's clock instead, and keeps its field" % (received, why))
    return now


def _last_epoch(received, first):
    """The time of a batch's last event (received at RECEIVED), for its metadata."""
    epoch = _event_epoch(received)
    return first if epoch is None else epoch


def _field_names(event):
    names = getattr(event, "field_names", None) or event.get_names  # current, else legacy API
    return names()


def _fields(event):
    names = _field_names(event)
    return dict(zip(names, map(event.get_field, names)))


def _json_value(value):
    """JSON for the one field type json cannot take: binary fields become base64 text."""
    if isinstance(value, (memoryview, bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def _json_encoder():
    """Compact JSON for event fields, the same as json.dumps gives. json.dumps builds a new
    C encoder at every call, a third of its time for one event; this builds it once, with
    the arguments json.encoder gives it (the public, slower way where there is no C one)."""
    from json.encoder import c_make_encoder, encode_basestring_ascii
    if c_make_encoder is None:
        return json.JSONEncoder(default=_json_value, separators=(",", ":")).encode
    encode = c_make_encoder(None, _json_value, encode_basestring_ascii, None, ":", ",", False,
                            False, True)
    return lambda fields: "".join(encode(fields, 0))


_JSON = _json_encoder()


def _json(fields):
    return _JSON(fields).encode()


def _pickle(fields):
    binary = {name: bytes(value) if isinstance(value, memoryview) else value
              for name, value in fields.items()}
    return pickle.dumps(binary, protocol=2)


def _raw(value):
    if isinstance(value, (memoryview, bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def _record(event):
    """The event as the object body holds it: (body format, bytes).

    A batch holds one JSON object per line. One event per object holds FORMAT, except that
    raw falls back to json for an event without raw_event, so that its fields are kept.
    """
    if BATCHING:
        return "jsonl", (_JSON(_fields(event)) + "\n").encode()
    if FORMAT == "raw":
        raw_event = event.get_field("raw_event")
        if raw_event is not None:
            return "raw", _raw(raw_event)
        _log_limited("no raw_event", nxlog.log_warning, "an event without raw_event is stored "
                     "as json, so that its fields are kept")
        return "json", _json(_fields(event))
    if FORMAT == "json":
        return "json", _json(_fields(event))
    return "pickle", _pickle(_fields(event))


# ---- The spool ----------------------------------------------------------------------------
#
# SEQ-EPOCH.FORMAT.open  the batch being filled (EPOCH: its first event's time)
# SEQ.json        a closed batch's manifest: id, format, events, times and its key
# SEQ.data        a closed batch's body, uncompressed
# Closing writes the manifest before it renames .open to .data, so that after a crash at
# any point the start-up recovery knows every batch: nothing waits in the spool unnamed.

class Batch(object):
    """A closed batch: its manifest, and where its body waits in the spool."""

    FIELDS = ("seq", "id", "format", "epoch", "first", "last", "events", "bytes", "key",
              "key_epoch")

    def __init__(self, **manifest):
        for name in self.FIELDS:
            setattr(self, name, manifest.get(name))

    def path(self, suffix):
        return os.path.join(SPOOL_DIR, "%012d.%s" % (self.seq, suffix))

    def manifest(self):
        return {name: getattr(self, name) for name in self.FIELDS}

    def save(self):
        _write_atomically(self.path("json"), json.dumps(self.manifest()).encode(), FSYNC != "os")


def _count(number, noun, plural=None):
    """'1 event', '2 events'."""
    return "%d %s" % (number, noun if number == 1 else plural or noun + "s")


class Spool(object):
    """The batch being filled and the closed batches waiting for S3, on disk.

    write_data appends to the open batch under the lock; the uploader threads close aged
    batches, take closed ones oldest first (each batch by one thread at a time), and delete
    each once S3 confirmed it.
    """

    def __init__(self):
        self.lock = threading.Condition(threading.Lock())
        self.closed = collections.OrderedDict()  # seq -> Batch, oldest first
        self.uploading = set()  # the seqs of the closed batches an uploader thread has taken
        self.bytes = 0  # what the spool holds, open batch included
        self.dropped = 0
        self.open_fd = None
        self.open_seq = self.open_epoch = self.open_last = None
        self.open_events = self.open_bytes = 0
        self.open_format = None
        self.open_since = None  # monotonic time of the open batch's first event
        self.next_seq = 1
        self.lock_fd = None
        self.last_stored_epoch = 0  # the key time in LAST_STORED

    # -- start-up --

    def start(self):
        _private_directory(SPOOL_DIR, "SPOOL_DIR", own=True)
        self._take_lock()
        self._recover_last_stored()
        self._recover()

    def _take_lock(self):
        self.lock_fd = _exclusive_lock(os.path.join(SPOOL_DIR, ".lock"))
        if self.lock_fd is None:
            raise ConfigError("%s: another writer uses the spool %s: give each <Output> its "
                              "own NXLOG_S3_SPOOL_DIR" % (SCRIPT, os.path.abspath(SPOOL_DIR)))

    def _recover(self):
        """Takes up what an earlier run left: closed batches, and the batch it was filling."""
        names = sorted(os.listdir(SPOOL_DIR))
        for name in names:
            if name.startswith(".tmp."):
                os.unlink(os.path.join(SPOOL_DIR, name))
        manifests = {int(name[:-5]): name for name in names if re.match(r"^\d+\.json$", name)}
        opens = {int(name.split("-")[0]): name for name in names
                 if re.match(r"^\d+-\d+\.[a-z]+\.open$", name)}
        for seq in sorted(set(manifests) | set(opens)):
            self.next_seq = max(self.next_seq, seq + 1)
            try:
                batch = self._recovered_batch(seq, manifests.get(seq), opens.get(seq))
            except (ValueError, TypeError, KeyError) as exc:  # a damaged manifest or name
                self._set_aside(seq, exc)
                continue
            if batch is not None:
                self.closed[seq] = batch
                self.bytes += batch.bytes
        if self.closed:
            nxlog.log_info("%s: %s (%s) left by an earlier run %s uploaded first" % (
                SCRIPT, _count(len(self.closed), "batch", "batches"),
                _count(sum(batch.events for batch in self.closed.values()), "event"),
                "is" if len(self.closed) == 1 else "are"))

    def _recover_last_stored(self):
        """The key time of the last batch stored, kept in LAST_STORED across restarts, so
        that keys never go back even once the spool is empty."""
        path = os.path.join(SPOOL_DIR, LAST_STORED)
        try:
            with open(path, "rb") as handle:
                batch = Batch(**json.loads(handle.read().decode()))
            if not isinstance(batch.key_epoch, (int, float)):
                raise ValueError("no key_epoch")
        except FileNotFoundError:
            return
        except (ValueError, TypeError) as exc:
            nxlog.log_warning("%s: %s cannot be read (%s): the next keys follow the events' "
                              "times" % (SCRIPT, os.path.abspath(path), exc))
            return
        _keys_after(batch, path)
        self.last_stored_epoch = batch.key_epoch

    def _set_aside(self, seq, reason):
        """Moves the files of a batch that cannot be understood to SPOOL_DIR/damaged/, where
        they stay for a person to look at, and goes on with the others."""
        damaged = os.path.join(SPOOL_DIR, "damaged")
        os.makedirs(damaged, mode=0o700, exist_ok=True)
        prefix = "%012d" % seq
        for name in os.listdir(SPOOL_DIR):
            if name.startswith(prefix):
                os.replace(os.path.join(SPOOL_DIR, name), os.path.join(damaged, name))
        nxlog.log_error("%s: the spooled batch %s cannot be read (%s); its files are kept in %s"
                        % (SCRIPT, prefix, reason, os.path.abspath(damaged)))

    def _recovered_batch(self, seq, manifest_name, open_name):
        if manifest_name is not None:
            with open(os.path.join(SPOOL_DIR, manifest_name), "rb") as handle:
                batch = Batch(**json.loads(handle.read().decode()))
            _keys_after(batch, os.path.join(SPOOL_DIR, manifest_name))
            if open_name is not None:  # the crash came between manifest and rename
                os.replace(os.path.join(SPOOL_DIR, open_name), batch.path("data"))
            if os.path.exists(batch.path("data")):
                return batch
            os.unlink(batch.path("json"))  # uploaded; the crash came between the two deletes
            return None
        return self._close_torn(seq, open_name)

    def _close_torn(self, seq, open_name):
        """The batch an earlier run was filling: cut a torn last line, then close it."""
        path = os.path.join(SPOOL_DIR, open_name)
        with open(path, "rb") as handle:
            body = handle.read()
        epoch, body_format, _ = open_name.split("-")[1].split(".")
        epoch = int(epoch)
        if body_format == "jsonl" and not body.endswith(b"\n"):
            body = body[:body.rfind(b"\n") + 1]
            with open(path, "r+b") as handle:
                handle.truncate(len(body))
        if not body:
            os.unlink(path)
            return None
        events = body.count(b"\n") if body_format == "jsonl" else 1
        batch = Batch(seq=seq, id=uuid.uuid4().hex, format=body_format, epoch=epoch,
                      first=_utc_text(epoch), last=self._last_time(body, body_format, epoch),
                      events=events, bytes=len(body))
        _assign_key(batch)
        batch.save()
        os.replace(path, batch.path("data"))
        return batch

    @staticmethod
    def _last_time(body, body_format, epoch):
        if body_format == "jsonl":
            last_line = body[body.rfind(b"\n", 0, len(body) - 1) + 1:]
            try:
                epoch = _last_epoch(json.loads(last_line).get("EventReceivedTime"), epoch)
            except (ValueError, AttributeError):
                pass
        return _utc_text(epoch)

    # -- write_data's side --

    def append(self, body_format, record, received):
        """Puts one event's record on disk, in the open batch; closes the batch when full.
        A full disk is a full spool: write_data waits for uploads to free room, or refuses
        the event (SPOOL_FULL=drop)."""
        with self.lock:
            if self.bytes + len(record) > SPOOL_MAX_BYTES:
                self._make_room(len(record))
            delay = 0.01
            while True:
                try:
                    self._write_event(body_format, record, received)
                    break
                except OSError as exc:
                    self._wait_for_disk(exc, delay)
                    delay = min(delay * 2, 1.0)
            if self.open_events >= BATCH_EVENTS or self.open_bytes >= BATCH_BYTES:
                self._try_to_close()

    def _write_event(self, body_format, record, received):
        if self.open_fd is not None and self.open_format != body_format:
            self._close_open()
        if self.open_fd is None:
            self._open(body_format, _key_time(received))
        self._write_whole(record)
        if FSYNC == "event":
            os.fsync(self.open_fd)
        self.open_events += 1
        self.open_bytes += len(record)
        self.bytes += len(record)
        self.open_last = received

    def _write_whole(self, record):
        """All of RECORD, or none of it: a write the disk cut short (full) is taken back, so
        that no torn line sits between two whole ones."""
        try:
            if os.write(self.open_fd, record) == len(record):
                return
            raise OSError(errno.ENOSPC, "the disk took only part of the event")
        except OSError:
            os.ftruncate(self.open_fd, self.open_bytes)
            raise

    def _wait_for_disk(self, exc, delay):
        """After a failed write to the spool: a full disk is a full spool; any other error
        refuses the event."""
        if exc.errno not in DISK_FULL:
            raise SpoolFull("cannot write to the spool %s: %s: event refused"
                            % (os.path.abspath(SPOOL_DIR), exc))
        self._wait_or_drop("disk full", "the disk of the spool %s is full (%s)"
                           % (os.path.abspath(SPOOL_DIR), exc.strerror), delay)

    def _make_room(self, size):
        if size > SPOOL_MAX_BYTES:
            raise SpoolFull("an event of %d bytes can never fit in SPOOL_MAX_BYTES=%d"
                            % (size, SPOOL_MAX_BYTES))
        delay = 0.01
        while self.bytes + size > SPOOL_MAX_BYTES:
            self._wait_or_drop("spool full", "the spool %s is full (SPOOL_MAX_BYTES=%d, S3 is "
                               "not taking events fast enough)"
                               % (os.path.abspath(SPOOL_DIR), SPOOL_MAX_BYTES), delay)
            delay = min(delay * 2, 1.0)

    def _wait_or_drop(self, problem, full, delay):
        """What SPOOL_FULL says to do while FULL (what is full) lasts: drop refuses the event,
        counted; block waits DELAY for uploads to free room, saying so once a minute."""
        if SPOOL_FULL == "drop":
            self.dropped += 1
            raise SpoolFull("%s: event dropped, %d dropped so far" % (full, self.dropped))
        _log_limited(problem, nxlog.log_warning, "%s: write_data waits for uploads to free "
                     "room" % full)
        self.lock.wait(delay)

    def _open(self, body_format, epoch):
        self.open_seq, self.next_seq = self.next_seq, self.next_seq + 1
        self.open_epoch, self.open_format = int(epoch), body_format
        self.open_fd = os.open(self._open_path(),
                               os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self.open_since = time.monotonic()
        self.lock.notify_all()  # the uploader now has an age limit to watch

    def _open_path(self):
        return os.path.join(SPOOL_DIR, "%012d-%d.%s.open" % (
            self.open_seq, self.open_epoch, self.open_format))

    def _close_open(self):
        """Manifest first, then the rename: see the layout above. If the manifest cannot be
        written (a full disk), the batch stays open and nothing changed."""
        if FSYNC == "batch":
            os.fsync(self.open_fd)
        batch = Batch(seq=self.open_seq, id=uuid.uuid4().hex, format=self.open_format,
                      epoch=self.open_epoch, first=_utc_text(self.open_epoch),
                      last=_utc_text(_last_epoch(self.open_last, self.open_epoch)),
                      events=self.open_events,
                      bytes=self.open_bytes)
        _assign_key(batch)
        batch.save()
        os.close(self.open_fd)
        os.replace(self._open_path(), batch.path("data"))
        self.closed[batch.seq] = batch
        self.open_fd = self.open_since = None
        self.open_events = self.open_bytes = 0
        self.lock.notify_all()

    def _try_to_close(self):
        """Closes the open batch; False if the disk refused (it stays open, tried again)."""
        try:
            self._close_open()
            return True
        except OSError as exc:
            _log_limited("cannot close", nxlog.log_warning, "cannot close the batch being "
                         "filled in %s: %s; it stays open and closing is tried again"
                         % (os.path.abspath(SPOOL_DIR), exc))
            return False

    # -- the uploader's side --

    def next_batch(self, timeout):
        """Takes the oldest closed batch no other uploader thread has, closing the open one
        once it is BATCH_AGE old; waits up to TIMEOUT for one. None if there is none yet."""
        with self.lock:
            deadline = time.monotonic() + timeout
            while not _stopping.is_set():
                retry_close = None
                if self.open_since is not None and \
                        time.monotonic() - self.open_since >= BATCH_AGE and \
                        not self._try_to_close():
                    retry_close = time.monotonic() + RETRY_DELAYS[0]
                for seq, batch in self.closed.items():
                    if seq not in self.uploading:
                        self.uploading.add(seq)
                        return batch
                now = time.monotonic()
                if now >= deadline:
                    return None
                wake = deadline if self.open_since is None else min(
                    deadline, retry_close or self.open_since + BATCH_AGE)
                self.lock.wait(max(0.0, wake - now))
            return None

    def give_back(self, batch):
        """An uploader thread is done with BATCH for now: another may take it."""
        with self.lock:
            self.uploading.discard(batch.seq)
            self.lock.notify_all()

    def remove(self, batch):
        """S3 has BATCH: its files go, and so does what write_data may be waiting for. The
        manifest of the batch with the latest key time becomes LAST_STORED."""
        os.unlink(batch.path("data"))
        with self.lock:
            if batch.key_epoch >= self.last_stored_epoch:
                os.replace(batch.path("json"), os.path.join(SPOOL_DIR, LAST_STORED))
                self.last_stored_epoch = batch.key_epoch
            else:
                os.unlink(batch.path("json"))
            del self.closed[batch.seq]
            self.uploading.discard(batch.seq)
            self.bytes -= batch.bytes
            self.lock.notify_all()

    def release(self):
        """Closes the spool's files without closing the open batch, as a crash would."""
        with self.lock:
            for fd in (self.open_fd, self.lock_fd):
                if fd is not None:
                    os.close(fd)
            self.open_fd = self.lock_fd = None

    def pending(self):
        """Events not in S3 yet, open batch included."""
        with self.lock:
            return sum(batch.events for batch in self.closed.values()) + self.open_events


class SpoolFull(RuntimeError):
    """write_data refuses an event (SPOOL_FULL=drop): NXLog logs this and drops the event."""

    def __init__(self, reason):
        RuntimeError.__init__(self, "%s: %s" % (SCRIPT, reason))


# ---- Uploads ------------------------------------------------------------------------------

_last_counter = collections.OrderedDict()  # "SERVER/YYYY-MM-DD/HH.MM.SS" -> last N used


class TryLater(Exception):
    """An upload that failed for now; the batch stays in the spool for the next round."""


def _key_second(epoch):
    stamp = time.localtime(epoch) if KEY_TIME == "local" else time.gmtime(epoch)
    return "%s/%s" % (SERVER, time.strftime("%Y-%m-%d/%H.%M.%S", stamp))


def _remember_counter(second, counter):
    _last_counter[second] = counter
    _last_counter.move_to_end(second)
    if len(_last_counter) > REMEMBERED_SECONDS:
        _last_counter.popitem(last=False)


def _highest_counter(second):
    """The highest N among the objects SECOND.N that exist now."""
    pattern = re.compile(re.escape(second) + r"\.([0-9]+)$")
    highest = 0
    pages = _s3().get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=second + ".", **_owner())
    for page in pages:
        for item in page.get("Contents", ()):
            match = pattern.match(item["Key"])
            if match:
                highest = max(highest, int(match.group(1)))
    return highest


_newest_key_epoch = 0  # the latest key time this writer has used


def _key_epoch(batch):
    """The time in BATCH's key: its first event's, but never before a key this writer used
    already, so that a clock set back (or a forward jump put right) cannot put keys behind
    a reader's lookback window. Events keep their own times."""
    global _newest_key_epoch
    if batch.key_epoch is None:
        batch.key_epoch = max(batch.epoch, _newest_key_epoch)
    _newest_key_epoch = max(_newest_key_epoch, batch.key_epoch)
    return batch.key_epoch


def _keys_after(batch, where):
    """Later keys come after BATCH's, a batch found in the spool (in the file WHERE), unless
    this host's clock is now more than MAX_AHEAD behind it: later keys then follow the clock,
    and the reader's re-listing (LATE_HORIZON) reads them."""
    global _newest_key_epoch
    if batch.key_epoch is None:  # keyed by an older version, by its first event's time
        batch.key_epoch = batch.epoch
    if batch.key_epoch > time.time() + MAX_AHEAD:
        nxlog.log_warning("%s: %s holds the key time %s, more than MAX_AHEAD=%d s ahead of "
                          "this host's clock: later keys follow the clock" % (
                              SCRIPT, os.path.abspath(where), _utc_text(batch.key_epoch),
                              MAX_AHEAD))
        return
    _newest_key_epoch = max(_newest_key_epoch, batch.key_epoch)


def _assign_key(batch, after=0):
    """Gives BATCH its key, SECOND.N past AFTER. The caller records it in the manifest
    before any upload, and holds the spool's lock (closing batches assigns keys too)."""
    second = _key_second(_key_epoch(batch))
    counter = max(_last_counter.get(second, 0), after) + 1
    _remember_counter(second, counter)
    batch.key = "%s.%d" % (second, counter)


def _owner():
    return {"ExpectedBucketOwner": EXPECTED_BUCKET_OWNER} if EXPECTED_BUCKET_OWNER else {}


def _object_arguments(batch):
    """Content-Type, Content-Encoding, metadata and the object options for BATCH."""
    arguments = {"ContentType": CONTENT_TYPES[batch.format], "Metadata": {
        "nxlog-s3-version": OBJECT_VERSION, "nxlog-s3-format": batch.format,
        "nxlog-s3-compression": COMPRESSION, "nxlog-s3-events": str(batch.events),
        "nxlog-s3-first": batch.first, "nxlog-s3-last": batch.last, "nxlog-s3-batch": batch.id}}
    if COMPRESSION != "none":
        arguments["ContentEncoding"] = COMPRESSION
    if STORAGE_CLASS:
        arguments["StorageClass"] = STORAGE_CLASS
    if SSE:
        arguments["ServerSideEncryption"] = SSE
    if SSE_KMS_KEY_ID:
        arguments["SSEKMSKeyId"] = SSE_KMS_KEY_ID
    arguments.update(_owner())
    return arguments


def _compress(source, target):
    """Copies SOURCE to TARGET (binary files), compressed by COMPRESSION."""
    if COMPRESSION == "gzip":
        target = gzip.GzipFile(fileobj=target, mode="wb", compresslevel=6, mtime=0)
    elif COMPRESSION == "zstd":
        target = zstandard.ZstdCompressor().stream_writer(target, closefd=False)
    with source:
        while True:
            chunk = source.read(1024 * 1024)
            if not chunk:
                break
            target.write(chunk)
    if COMPRESSION != "none":
        target.close()


def _put(batch):
    """Uploads BATCH to its key, only if that key is free (If-None-Match: *)."""
    arguments = _object_arguments(batch)
    if batch.bytes <= IN_MEMORY_UPLOAD:
        body = io.BytesIO()
        _compress(open(batch.path("data"), "rb"), body)
        _s3().put_object(Bucket=BUCKET, Key=batch.key, Body=body.getvalue(), IfNoneMatch="*",
                         **arguments)
        return
    client = _s3()
    for operation in ("PutObject", "CompleteMultipartUpload"):
        client.meta.events.register("provide-client-params.s3." + operation, _if_none_match,
                                    unique_id="nxlog-s3-if-none-match-" + operation)
    with tempfile.TemporaryFile(dir=SPOOL_DIR) as body:
        _compress(open(batch.path("data"), "rb"), body)
        body.seek(0)
        client.upload_fileobj(body, BUCKET, batch.key, ExtraArgs=arguments,
                              Config=TRANSFER_CONFIG)


def _if_none_match(params, **kwargs):
    """The transfer manager cannot pass If-None-Match: this adds it to the requests that
    store an object, one PUT or the completion of a multipart upload."""
    params["IfNoneMatch"] = "*"


def _landed_before(batch):
    """Whether the object at BATCH's key is BATCH itself, stored by an earlier attempt."""
    head = _s3().head_object(Bucket=BUCKET, Key=batch.key, **_owner())
    return head.get("Metadata", {}).get("nxlog-s3-batch") == batch.id


def _stored(batch):
    """Puts BATCH at its key: True once S3 holds it, from this attempt or an earlier one
    whose answer was lost; False if another object has that key."""
    try:
        _put(batch)
    except ClientError as exc:
        if _error_code(exc) != "PreconditionFailed":
            raise
        return _landed_before(batch)
    return True


def _upload(batch):
    """Stores BATCH exactly once. Raises TryLater if S3 does not take it now."""
    try:
        for _ in range(MAX_KEY_CONFLICTS):
            if _stored(batch):
                return
            highest = _highest_counter(_key_second(batch.key_epoch))
            with _spool.lock:
                _assign_key(batch, after=highest)
            batch.save()
    except ClientError as exc:
        raise TryLater(batch, exc, _error_code(exc)) from None
    except BotoCoreError as exc:
        raise TryLater(batch, exc, type(exc).__name__) from None
    raise TryLater(batch, "%d keys in a row were taken by other writers" % MAX_KEY_CONFLICTS,
                   "conflicts")


def _report(problem):
    batch, reason, code = problem.args
    permanent = code in PERMANENT_ERRORS
    _log_limited(code, nxlog.log_error if permanent else nxlog.log_warning,
                 "cannot store %s (%s) now: %s; %s" % (
                     _quoted(batch.key), _count(batch.events, "event"), reason,
                     "fix this: the events wait in the spool, and uploads go on by "
                     "themselves once S3 takes them" if permanent else
                     "the events wait in the spool and uploads will be tried again"))


_stopping = threading.Event()


def _upload_forever():
    """An uploader thread: uploads batches from the spool, oldest first, for as long as the
    process lives. A batch S3 does not take now stays with its thread for the back-off, so
    that no other thread tries it again at once."""
    failures = 0
    while not _stopping.is_set():
        batch = None
        try:
            batch = _spool.next_batch(timeout=RETRY_DELAYS[-1])
            if batch is None:
                continue
            _upload(batch)
            _spool.remove(batch)
            failures = 0
            continue
        except TryLater as problem:
            _report(problem)
            _stopping.wait(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
            failures += 1
        except Exception:  # never let the thread die: the spool would only grow
            _log_limited("uploader", nxlog.log_error, "unexpected error in the uploader, "
                         "retrying: %s" % traceback.format_exc())
            _stopping.wait(RETRY_DELAYS[-1])
        if batch is not None:  # to be tried again, by whichever thread is free first
            _spool.give_back(batch)


def write_data(event):
    """Called by NXLog for each event: returns once the event is in the spool on disk."""
    body_format, record = _record(event)
    _spool.append(body_format, record, event.get_field("EventReceivedTime"))


def stop():
    """Ends this instance as the end of its process would, open batch left as it is. NXLog
    never calls it (it has no shutdown hook); tests and programs that embed the script do."""
    _stopping.set()
    with _spool.lock:
        _spool.lock.notify_all()
    for uploader in _uploaders:
        uploader.join()
    _spool.release()


_spool = Spool()
_spool.start()
_uploaders = [threading.Thread(target=_upload_forever, name="%s uploader %d" % (SCRIPT, number),
                               daemon=True) for number in range(1, UPLOAD_THREADS + 1)]
for _thread in _uploaders:
    _thread.start()
nxlog.log_info("%s: events go to s3://%s/%s/ (%s, %s, compression %s), spool %s"
               % (SCRIPT, BUCKET, SERVER,
                  "batches of up to %d events, %d bytes or %g s" % (
                      BATCH_EVENTS, BATCH_BYTES, BATCH_AGE) if BATCHING else
                  "one object per event", BODY_FORMAT, COMPRESSION, os.path.abspath(SPOOL_DIR)))
