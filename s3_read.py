"""NXLog im_python input: reads back the events that s3_write.py stored in S3.

    <Input s3>
        Module      im_python
        PythonCode  /etc/nxlog/s3_read.py
    </Input>

NXLog calls read_data(module) (`Call read_event` works too, for old configurations). Each
call lists the objects of each SERVER in BUCKET from a LOOKBACK window behind the newest one
read, posts the events of those it has not read yet in key order (objects of one second by
their counter as a number: .2 before .10), records each object in the CHECKPOINT file, and
schedules the next call: at once while more is waiting, after POLL_INTERVAL seconds once it
has caught up. Objects that land late (a retried upload, a second writer, a clock behind) are
read: inside the window at the next poll, up to LATE_HORIZON behind by a re-listing made
every LATE_INTERVAL; a sweep of the whole prefix every SWEEP_INTERVAL names in a warning what
landed further behind. Keys off the scheme or with impossible times are reported and passed;
a key from the future is read but moves no window. No object is passed over in silence. An
object that cannot be read is tried again on later polls, MAX_ATTEMPTS times, then set aside
and reported; the objects after it are read meanwhile.

The checkpoint (CHECKPOINT, and CHECKPOINT.late for the horizon) is written atomically after
each object, so a restart, even after a crash, resumes where the reader stopped (an event may
be posted twice, never lost). Delete both to read everything again. The old scripts'
lastkey.log is taken up where it stands.

Settings are below; each one can also be set without editing this file, through the
environment variable NXLOG_S3_<NAME>. Credentials, region and endpoint come from the standard
AWS chain (AWS_PROFILE, AWS_ENDPOINT_URL, ~/.aws/config, instance roles), never from this file.
"""

# ---- Settings ----------------------------------------------------------------------------
BUCKET = "my-log-archive"   # the bucket s3_write.py writes to; never created or changed here
SERVER = ""                 # whose events: a name, names with commas (web01,web02), or * for
                            # every server in the bucket; empty: this machine's host name
CHECKPOINT = "lastkey.log"  # where the reader keeps its place; relative: NXLog's SpoolDir
POLL_INTERVAL = 10          # seconds between two looks at the bucket once caught up
LOOKBACK = 300              # seconds of key time behind the newest object read in which
                            # objects that land late are read at the next poll
LATE_HORIZON = 86400        # seconds of key time behind the newest object read in which
                            # objects that land later still are read, by a re-listing...
LATE_INTERVAL = 900         # ...made every this many seconds (0: whenever caught up)
SWEEP_INTERVAL = 86400      # seconds between two listings of a server's whole prefix, which
                            # report what landed behind LATE_HORIZON or off the key scheme
                            # since the last one; 0: never (such objects then go unseen)
MAX_AHEAD = 300             # seconds a key may lie ahead of this host's clock and still count
                            # as the newest read (a key further ahead is read, but moves
                            # nothing: a stray key from the future cannot blind the reader)
KEY_TIME = "utc"            # the time in the keys, as the writers' KEY_TIME: utc or local
START_AT = "beginning"      # with no checkpoint yet: beginning (everything), or now
MAXKEYS = 1000              # keys per list request (S3 gives at most 1000)
MAX_OBJECTS_PER_CALL = 100  # one read_data call posts the events of this many objects...
MAX_SECONDS_PER_CALL = 1.0  # ...or works this long (even inside a large object), then lets
                            # NXLog have its turn and is called again at once
FETCH_THREADS = 4           # objects fetched at the same time (events are still posted in
                            # key order)
MAX_ATTEMPTS = 5            # polls that try an object that cannot be read before it is set
                            # aside (reported, and left in the bucket)
ALLOW_PICKLE = False        # read pickled objects: only for a bucket whose writers you trust
RAW_LINES = False           # objects without s3_write.py's metadata: one event per line
                            # (stores filled by other tools) instead of one per object
MAX_EVENT_BYTES = 67108864  # an event (a line, or a whole object) larger than this, once
                            # decompressed, makes its object undecodable: a decompression
                            # bomb cannot exhaust memory; 0: no limit
AFTER_READ = "keep"         # keep, delete, or move (to MOVE_PREFIX) each object once read
MOVE_PREFIX = ""            # with AFTER_READ=move: where objects go, e.g. read/
RETRY_MODE = "standard"     # botocore retry mode: standard or adaptive
RETRY_ATTEMPTS = 5          # attempts per S3 request, the first one included
TLS_VERIFY = True           # check the endpoint's TLS certificate (AWS_CA_BUNDLE names a
                            # private CA); false only for a test endpoint, never in production
CONNECT_TIMEOUT = 10        # seconds
READ_TIMEOUT = 60           # seconds
# ---- End of settings ---------------------------------------------------------------------

import calendar
import collections
import concurrent.futures
import email.utils
import functools
import gzip
import io
import itertools
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
import zlib

import boto3
import nxlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one reader per CHECKPOINT is up to the user
    fcntl = None
try:
    import zstandard
except ImportError:
    zstandard = None

METADATA_FORMAT = "nxlog-s3-format"
METADATA_COMPRESSION = "nxlog-s3-compression"
GZIP_MAGIC = b"\x1f\x8b"
PICKLE_MAGIC = re.compile(b"^\x80[\x02-\x05]")  # what a pickle of protocol 2 to 5 starts with
MORE_WAITING_DELAY = 0.01  # seconds to the next call when a call stopped at its bound
CHECKPOINT_VERSION = 3  # 3: the horizon's seconds in CHECKPOINT.late
WHOLE_OBJECT = 8 * 1024 * 1024  # objects up to this size are fetched ahead, whole, by the
                                # fetch threads; larger ones stream as they are posted
REMEMBERED_OTHER_KEYS = 1000  # keys outside the scheme reported once each, at the most
CLOCK_EVERY = 1000  # events between two looks at the clock inside a streamed object
# A key of the scheme: SERVER, its second, its counter.
SCHEME_KEY = re.compile(
    r"^([^/]+)/([0-9]{4}-[0-9]{2}-[0-9]{2}/[0-9]{2}\.[0-9]{2}\.[0-9]{2})\.([0-9]+)$")
SECOND_FORMAT = "%Y-%m-%d/%H.%M.%S"

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


def _servers(text):
    """SERVER: one name, names with commas, or * for every server in the bucket."""
    if text.strip() == "*":
        return "*"
    names = [_server(name) for name in text.split(",")] if text.strip() else [_server("")]
    return sorted(set(names))


def _move_prefix(text):
    value = text.strip()
    if value and (not value.endswith("/") or value.startswith("/") or ".." in value):
        raise ValueError("a prefix such as read/ (ending with '/')")
    return value


BUCKET = _setting("BUCKET", _bucket)
SERVER = _setting("SERVER", _servers)
CHECKPOINT = _setting("CHECKPOINT", _path)
POLL_INTERVAL = _setting("POLL_INTERVAL", _number(float, 0.01))
LOOKBACK = _setting("LOOKBACK", _number(int, 0))
LATE_HORIZON = _setting("LATE_HORIZON", _number(int, 0))
LATE_INTERVAL = _setting("LATE_INTERVAL", _number(float, 0))
SWEEP_INTERVAL = _setting("SWEEP_INTERVAL", _number(float, 0))
MAX_AHEAD = _setting("MAX_AHEAD", _number(int, 0))
KEY_TIME = _setting("KEY_TIME", _choice("utc", "local"))
START_AT = _setting("START_AT", _choice("beginning", "now"))
MAXKEYS = _setting("MAXKEYS", _number(int, 1, 1000))
MAX_OBJECTS_PER_CALL = _setting("MAX_OBJECTS_PER_CALL", _number(int, 1))
MAX_SECONDS_PER_CALL = _setting("MAX_SECONDS_PER_CALL", _number(float, 0.01))
FETCH_THREADS = _setting("FETCH_THREADS", _number(int, 1, 64))
MAX_ATTEMPTS = _setting("MAX_ATTEMPTS", _number(int, 1))
ALLOW_PICKLE = _setting("ALLOW_PICKLE", _flag)
MAX_EVENT_BYTES = _setting("MAX_EVENT_BYTES", _number(int, 0))
RAW_LINES = _setting("RAW_LINES", _flag)
AFTER_READ = _setting("AFTER_READ", _choice("keep", "delete", "move"))
MOVE_PREFIX = _setting("MOVE_PREFIX", _move_prefix)
RETRY_MODE = _setting("RETRY_MODE", _choice("standard", "adaptive"))
RETRY_ATTEMPTS = _setting("RETRY_ATTEMPTS", _number(int, 1))
TLS_VERIFY = _setting("TLS_VERIFY", _flag)
CONNECT_TIMEOUT = _setting("CONNECT_TIMEOUT", _number(float, 0.1))
READ_TIMEOUT = _setting("READ_TIMEOUT", _number(float, 0.1))
CONNECTIONS = FETCH_THREADS + 1  # the client's connection pool: fetch threads and read_data
if AFTER_READ == "move" and not MOVE_PREFIX:
    raise ConfigError("%s: AFTER_READ=move needs MOVE_PREFIX, where the objects go" % SCRIPT)
if MOVE_PREFIX and SERVER != "*" and any(MOVE_PREFIX.startswith(name + "/") for name in SERVER):
    raise ConfigError("%s: MOVE_PREFIX=%r is inside a SERVER's own prefix: moved objects would "
                      "be listed again" % (SCRIPT, MOVE_PREFIX))
if MOVE_PREFIX.count("/") > 1 and SERVER == "*":
    raise ConfigError("%s: with SERVER=*, every first segment of a key is a server, so "
                      "MOVE_PREFIX=%r would move objects into one server's prefix: use one "
                      "segment, such as read/" % (SCRIPT, MOVE_PREFIX))
if LATE_HORIZON < LOOKBACK:
    raise ConfigError("%s: LATE_HORIZON=%d is shorter than LOOKBACK=%d: the re-listing for late "
                      "objects must reach at least as far back as each poll does"
                      % (SCRIPT, LATE_HORIZON, LOOKBACK))


class CheckpointError(RuntimeError):
    """The checkpoint file cannot be used: the reader reads nothing until it is fixed. The
    message is logged with the script's name before it."""


class UndecodableObject(ValueError):
    """An object whose content cannot be turned into events; it stays in the bucket."""


# ---- Keys and time ------------------------------------------------------------------------

# One object listed: its key, the second and counter in it, that second's epoch, its size,
# and when S3 stored it (epoch).
Listed = collections.namedtuple("Listed", "key second counter epoch size modified")
PAUSE = object()  # what a listing yields now and then, so that a long one can wait for the
                  # next call instead of holding NXLog up
LANDING_MARGIN = 300  # seconds a sweep looks before the last one: clocks and slow uploads


@functools.lru_cache(maxsize=65536)
def _second_epoch(second):
    """Seconds since the epoch of a key's second (SECOND_FORMAT, in KEY_TIME); ValueError for
    a date or time that cannot be (2026-02-30, 25.61.61). Every key listed asks: it is kept."""
    stamp = time.strptime(second, SECOND_FORMAT)
    epoch = int(calendar.timegm(stamp) if KEY_TIME == "utc" else time.mktime(stamp))
    if _second_text(epoch) != second:  # strptime takes 60 and 61 seconds; local time has gaps
        raise ValueError("%s is not a time that exists" % second)
    return epoch


def _second_text(epoch):
    return time.strftime(SECOND_FORMAT, (time.gmtime if KEY_TIME == "utc" else time.localtime)(
        epoch))


def _ranges(counters):
    """{1, 2, 3, 7} as "1-3,7": the counters of a busy second take a few bytes, not pages."""
    runs = []
    for _, run in itertools.groupby(enumerate(sorted(counters)), lambda pair: pair[1] - pair[0]):
        run = [counter for _, counter in run]
        runs.append(str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1]))
    return ",".join(runs)


def _counters(text):
    if not isinstance(text, str):
        raise ValueError("counters %r are not text such as 1-3,7" % (text,))
    counters = set()
    for run in filter(None, text.split(",")):
        first, _, last = run.partition("-")
        counters.update(range(int(first), int(last or first) + 1))
    return counters


SEAL_EVERY = max(LOOKBACK, 60)  # seconds of key time between two rewrites of the .late file


class Position(object):
    """How far the reader got in one server's objects.

    NEWEST is the newest second read, a key far ahead of this host's clock apart (MAX_AHEAD).
    The counters read, reported or set aside are kept for each second from keep_from() on:
    LATE_HORIZON behind NEWEST, or LATE_START (the horizon at the last sweep), whichever is
    older, and every second after it. Each poll lists from LOOKBACK behind NEWEST; the
    re-listing, every LATE_INTERVAL, lists from keep_from() up to there (see _late_keys).
    FLOOR (START_AT=now, or an older checkpoint taken up) is the time before which nothing is
    read.

    The seconds before SEALED are kept apart, in LATE, and saved in the checkpoint's .late
    file only when they change: saving after every object stays cheap however many seconds
    the horizon holds. Objects read behind SEALED (late ones) are noted in READ first, and
    moved to LATE a SEAL_EVERY at a time.
    """

    def __init__(self, newest=None, read=None, floor=None, late_start=None, sealed=None,
                 attempts=None, partial=None, swept_at=None):
        self.newest = newest  # epoch of the newest second read, or None
        self.read = read or {}  # second -> set of counters, from SEALED on
        self.late = {}  # the same, before SEALED
        self.floor = floor
        self.late_start = late_start  # the horizon (epoch) at the last sweep
        self.sealed = sealed
        self.swept_at = swept_at  # S3's time when the last sweep began (see _late_keys)
        self.late_changed = False  # LATE changed since the last save
        self.seconds_behind = 0  # seconds noted in READ behind SEALED since the last move
        self.pruned_to = None  # keep_from() at the last prune
        self.attempts = attempts or {}  # key -> [failed reads so far, when the last one was]
        self.partial = partial or {}  # key of an object read in part -> its events posted

    def start_after(self, server, epoch):
        """A key before every object at or after EPOCH (and the floor): where a listing
        starts; None for the beginning."""
        starts = [start for start in (self.floor, epoch) if start is not None]
        return "%s/%s" % (server, _second_text(max(starts))) if starts else None

    def window_start(self):
        return None if self.newest is None else self.newest - LOOKBACK

    def horizon(self):
        return self.newest - LATE_HORIZON

    def keep_from(self):
        return self.horizon() if self.late_start is None else min(self.late_start,
                                                                   self.horizon())

    def done(self, item):
        """Whether ITEM was read (or reported, or set aside), or lies before the floor."""
        return item.counter in self.read.get(item.second, ()) or \
            item.counter in self.late.get(item.second, ()) or \
            (self.floor is not None and item.epoch < self.floor)

    def mark(self, item):
        """ITEM is done. It becomes the newest read if it is, unless it lies further ahead of
        this host's clock than MAX_AHEAD."""
        counters = self.read.setdefault(item.second, set())
        if not counters and self.sealed is not None and item.epoch < self.sealed:
            self.seconds_behind += 1
        counters.add(item.counter)
        if item.epoch > time.time() + MAX_AHEAD:
            return
        if self.newest is None or item.epoch > self.newest:
            self.newest = item.epoch
            if self.pruned_to is None or self.keep_from() - self.pruned_to >= SEAL_EVERY:
                self.prune()

    def finish_late(self, horizon):
        """A sweep (or, without sweeps, a re-listing) has listed up to the window: later
        re-listings start at HORIZON."""
        self.late_start = horizon
        self.prune()

    def prune(self):
        """Forgets the seconds no listing reaches any more. Compared as text, which sorts as
        time does (to within the hour a local clock repeats in autumn)."""
        keep_from = self.keep_from()
        first = _second_text(keep_from)
        for part in (self.late, self.read):
            for old in [old for old in part if old < first]:
                del part[old]
                self.late_changed |= part is self.late
        if self.floor is not None and self.floor < keep_from:
            self.floor = None
        self.pruned_to = keep_from

    def seal(self):
        """Moves the seconds behind SEALED to LATE, once SEALED moves on (it follows the
        window a SEAL_EVERY at a time), or once SEAL_EVERY of them wait (see the class)."""
        start = self.window_start()
        if start is None:
            return
        moved_on = self.sealed is None or start - self.sealed >= SEAL_EVERY
        if not moved_on and self.seconds_behind < SEAL_EVERY:
            return  # most saves: nothing to move, and no look through READ
        self.sealed, self.seconds_behind = start if moved_on else self.sealed, 0
        behind = [second for second in self.read if _second_epoch(second) < self.sealed]
        for second in behind:
            self.late.setdefault(second, set()).update(self.read.pop(second))
        self.late_changed |= bool(behind)

    def to_json(self):
        def text(epoch):
            return None if epoch is None else _second_text(epoch)
        return {"newest": text(self.newest), "read": _read_to_json(self.read),
                "floor": text(self.floor), "late_start": text(self.late_start),
                "sealed": text(self.sealed), "attempts": self.attempts, "partial": self.partial,
                "swept_at": None if self.swept_at is None else _utc_text(self.swept_at)}

    def late_json(self):
        return _read_to_json(self.late)

    def add_late(self, seconds):
        """Takes up the seconds of the .late file."""
        for second, counters in _read_from_json(seconds).items():
            self.late.setdefault(second, set()).update(counters)

    @classmethod
    def from_json(cls, data):
        def epoch(name):
            text = data.get(name)
            if text is not None and not isinstance(text, str):
                raise ValueError("%s is %r, not a second such as 2026-11-28/10.00.00"
                                 % (name, text))
            return None if text is None else _second_epoch(text)
        return cls(epoch("newest"), _read_from_json(data["read"]), epoch("floor"),
                   epoch("late_start"), epoch("sealed"), _attempts_from_json(data["attempts"]),
                   _partial_from_json(data["partial"]), _swept_at(data.get("swept_at")))


def _read_to_json(read):
    return {second: _ranges(counters) for second, counters in read.items()}


def _mapping(data, what):
    if not isinstance(data, dict):
        raise ValueError("%s is %r, not an object" % (what, data))
    return data


def _swept_at(text):
    if text is None:
        return None
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        raise ValueError("swept_at is %r, not a time such as 2026-11-28T10:00:00Z"
                         % (text,)) from None


def _read_from_json(data):
    read = {}
    for second, counters in _mapping(data, "read").items():
        _second_epoch(second)
        read[second] = _counters(counters)
    return read


def _attempts_from_json(data):
    for key, attempt in _mapping(data, "attempts").items():
        if not (isinstance(attempt, list) and len(attempt) == 2 and isinstance(attempt[0], int)
                and isinstance(attempt[1], (int, float))):
            raise ValueError("attempts of %r are %r, not [count, time]" % (key, attempt))
    return dict(data)


def _partial_from_json(data):
    for key, posted in _mapping(data, "partial").items():
        if not isinstance(posted, int) or isinstance(posted, bool) or posted < 0:
            raise ValueError("partial of %r is %r, not a count of events" % (key, posted))
    return dict(data)


class State(object):
    """The checkpoint: a Position for each server, and the keys outside the scheme seen."""

    def __init__(self, positions=None, other_keys=()):
        self.positions = positions or {}
        self.other_keys = list(other_keys)

    def position(self, server):
        if server not in self.positions:
            floor = int(time.time()) if START_AT == "now" else None
            self.positions[server] = Position(floor=floor)
        return self.positions[server]

    def first_sight_of_other_key(self, key):
        if key in self.other_keys:
            return False
        self.other_keys = (self.other_keys + [key])[-REMEMBERED_OTHER_KEYS:]
        return True

    def to_json(self):
        return {"version": CHECKPOINT_VERSION, "bucket": BUCKET, "other_keys": self.other_keys,
                "servers": {server: position.to_json()
                            for server, position in sorted(self.positions.items())}}

    def late_json(self):
        return {"version": CHECKPOINT_VERSION, "bucket": BUCKET,
                "servers": {server: position.late_json()
                            for server, position in sorted(self.positions.items())}}

    def add_late(self, data):
        """Takes up the .late file's seconds (see Position)."""
        if data.get("version") != CHECKPOINT_VERSION or data.get("bucket") != BUCKET:
            raise ValueError("its .late file is not of version %d for bucket %s"
                             % (CHECKPOINT_VERSION, BUCKET))
        for server, seconds in _mapping(data["servers"], "servers").items():
            self.position(server).add_late(seconds)


# ---- The checkpoint file ------------------------------------------------------------------

def _state_from_json(data):
    if not isinstance(data, dict) or data.get("version") not in (1, 2, CHECKPOINT_VERSION):
        raise ValueError("not a checkpoint of version 1 to %d" % CHECKPOINT_VERSION)
    if data.get("bucket") != BUCKET:
        raise CheckpointError(
            "checkpoint %s belongs to bucket %s, not %s: give each reader its own file "
            "with NXLOG_S3_CHECKPOINT" % (os.path.abspath(CHECKPOINT),
                                         data.get("bucket"), BUCKET))
    if data["version"] == 1:  # one server, the last second reached: read up to it
        match = SCHEME_KEY.match((data.get("group") or "") + "0")
        if match is None:
            raise ValueError("its group %r is not a second of the key scheme" % data.get("group"))
        return _state_after(match.group(1), match.group(2), set(data["done"]))
    other_keys = data["other_keys"]
    if not isinstance(other_keys, list) or not all(isinstance(key, str) for key in other_keys):
        raise ValueError("other_keys is not a list of keys")
    return State({server: Position.from_json(_mapping(position, server))
                  for server, position in _mapping(data["servers"], "servers").items()},
                 other_keys)


def _state_after(server, second, counters):
    """A State that has read SERVER up to SECOND (COUNTERS of that second): what an older
    checkpoint knows. Nothing before that second is read again, nor reported."""
    epoch = _second_epoch(second)
    return State({server: Position(newest=epoch, read={second: counters}, floor=epoch)})


def _state_from_last_key(last_key):
    """The old scripts' lastkey.log: they read keys in text order up to and including LAST_KEY."""
    match = SCHEME_KEY.match(last_key)
    if match is None:
        raise ValueError("%r is not a key of the scheme SERVER/YYYY-MM-DD/HH.MM.SS.N" % last_key)
    server, second = match.group(1), match.group(2)
    if SERVER != "*" and server not in SERVER:
        raise ValueError("its key %r is not under %s/" % (last_key, "/, ".join(SERVER)))
    counters = {int(SCHEME_KEY.match(key).group(3)) for key, _, _ in _list("%s/%s." % (
        server, second), None) if key <= last_key and SCHEME_KEY.match(key)}
    return _state_after(server, second, counters | {int(match.group(3))})


_lock_fd = None  # CHECKPOINT.lock, held while this reader lives


def _lock_path():
    return os.path.abspath(CHECKPOINT) + ".lock"


def _lock_checkpoint():
    """Refuses a CHECKPOINT that another reader uses: each would overwrite the other's."""
    global _lock_fd
    _lock_fd = _exclusive_lock(_lock_path())
    if _lock_fd is None:
        raise CheckpointError("another reader uses the checkpoint %s: give each reader its own "
                              "NXLOG_S3_CHECKPOINT" % os.path.abspath(CHECKPOINT))


def _keep_lock(state):
    """Takes the lock again if its file went (its folder removed while the reader ran), so
    that no second reader can start on the same CHECKPOINT; the whole STATE is then written
    again at the next save. Raises CheckpointError while another reader holds it."""
    global _lock_fd
    if _lock_fd is not None:
        try:
            if os.path.samestat(os.stat(_lock_path()), os.fstat(_lock_fd)):
                return
        except FileNotFoundError:
            pass
        os.close(_lock_fd)
        _lock_fd = None
        _log_limited("lock", nxlog.log_warning, "the lock file of the checkpoint %s was "
                     "removed while this reader ran: it is taken again, and the checkpoint "
                     "written again" % os.path.abspath(CHECKPOINT))
    os.makedirs(os.path.dirname(_lock_path()), mode=0o700, exist_ok=True)
    _lock_checkpoint()
    for position in state.positions.values():
        position.late_changed = True


def _read_text(path):
    """PATH's text, or None if there is no such file."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError("cannot read checkpoint %s: %s" % (path, exc)) from None


def _load_state():
    """The state in CHECKPOINT (and CHECKPOINT.late); a missing file means: start as
    START_AT says."""
    if _lock_fd is None:
        _lock_checkpoint()
    text = _read_text(os.path.abspath(CHECKPOINT))
    if text is None:
        return State()
    late = _read_text(os.path.abspath(CHECKPOINT) + ".late")
    try:
        try:
            if text.startswith("{"):
                state = _state_from_json(json.loads(text))
                if late is not None:
                    state.add_late(json.loads(late))
                return state
            if text and "\n" not in text:
                old = re.match(r"^b'(.*)'$", text)  # the old scripts sometimes wrote bytes' repr
                return _state_from_last_key(old.group(1) if old else text)
            raise ValueError("empty" if not text else "neither JSON nor one key")
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError("malformed: %s %s" % (type(exc).__name__, exc)) from None
    except ValueError as exc:
        where = os.path.abspath(CHECKPOINT)
        raise CheckpointError("checkpoint %s is broken (%s); fix it, or delete it (and %s.late) "
                              "to read s3://%s/ from the beginning"
                              % (where, exc, where, BUCKET)) from None


_unsaved = False  # the checkpoint lags behind what was posted: no more is read until saved


def _compact(data):
    return json.dumps(data, separators=(",", ":")).encode()


def _save_state(state):
    """Writes STATE to CHECKPOINT: first the horizon's seconds to CHECKPOINT.late if they
    changed, then the rest (a crash between the two loses nothing: the two are merged). If
    the disk refuses (full, read-only), reading pauses until it takes it, so that a crash
    meanwhile posts again one object at most."""
    global _unsaved
    path = os.path.abspath(CHECKPOINT)
    _unsaved = True
    try:
        for position in state.positions.values():
            position.seal()
        late = [position for position in state.positions.values() if position.late_changed]
        if late:
            _write_atomically(path + ".late", _compact(state.late_json()))
            for position in late:
                position.late_changed = False
        _write_atomically(path, _compact(state.to_json()))
    except OSError as exc:
        raise CheckpointError("cannot write checkpoint %s: %s; reading pauses until it can be "
                              "written (nothing is lost)" % (path, exc)) from None
    _unsaved = False


# ---- Listing ------------------------------------------------------------------------------

def _list(prefix, start_after, delimiter=None, dates=None):
    """(key, size, when stored) of every object under PREFIX after START_AFTER, in S3's
    (text) order, or with DELIMITER the common prefixes (size None), a page at a time. S3's
    time at each page is appended to DATES, if given."""
    arguments = {"Bucket": BUCKET, "Prefix": prefix, "PaginationConfig": {"PageSize": MAXKEYS}}
    if start_after:
        arguments["StartAfter"] = start_after
    if delimiter:
        arguments["Delimiter"] = delimiter
    for page in _s3().get_paginator("list_objects_v2").paginate(**arguments):
        if dates is not None:
            dates.append(_server_time(page))
        for item in page.get("CommonPrefixes", ()):
            yield item["Prefix"], None, None
        for item in page.get("Contents", ()):
            yield item["Key"], item["Size"], calendar.timegm(item["LastModified"].utctimetuple())


def _server_time(response):
    """S3's clock when it answered (its Date header), or this host's if it gave none."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return time.time()


def _server_names():
    if SERVER != "*":
        return SERVER
    names = []
    for prefix, _, _ in _list("", None, delimiter="/"):
        name = prefix[:-1]
        if MOVE_PREFIX == prefix:
            continue
        try:
            names.append(_server(name))
        except ValueError:
            _report_other_key(prefix, "its first segment is not a server name")
    return names


def _report_other_key(key, why):
    if _state.first_sight_of_other_key(key):
        nxlog.log_warning("%s: %s is not read: %s" % (SCRIPT, _quoted(key), why))


def _listed(server, start_after, dates=None):
    """The objects of SERVER after START_AFTER as Listed, in reading order: a second is
    sorted by counter once all of it was listed, even across two list pages. Keys off the
    scheme, or with a date or time that cannot be, are reported once and passed. PAUSE comes
    after every MAXKEYS keys or so."""
    def second_of(pair):
        match = SCHEME_KEY.match(pair[0])
        return match.group(2) if match else pair[0]
    listed = 0
    for _, group in itertools.groupby(_list(server + "/", start_after, dates=dates),
                                      key=second_of):
        group = sorted(group, key=_counter_order)
        listed += len(group)
        if listed >= MAXKEYS:
            listed = 0
            yield PAUSE
        for key, size, modified in group:
            match = SCHEME_KEY.match(key)
            if match is None:
                _report_other_key(key, "its key is not SERVER/YYYY-MM-DD/HH.MM.SS.N")
                continue
            try:
                epoch = _second_epoch(match.group(2))
            except ValueError:
                _report_other_key(key, "its date or time cannot be (%s)" % match.group(2))
                continue
            yield Listed(key, match.group(2), int(match.group(3)), epoch, size, modified)


def _counter_order(pair):
    match = SCHEME_KEY.match(pair[0])
    return int(match.group(3)) if match else -1


def _window_keys(server, position):
    """What a poll reads: the objects of SERVER not read yet, from LOOKBACK behind the
    newest one read on."""
    for item in _listed(server, position.start_after(server, position.window_start())):
        if item is PAUSE or not position.done(item):
            yield item


def _late_keys(server, position, sweep):
    """What the re-listing reads: the objects of SERVER not read yet between LATE_HORIZON
    and LOOKBACK behind the newest one read; those that fell behind the horizon since the
    last sweep are reported, once. A SWEEP lists the whole prefix: what S3 stored behind
    that since the last sweep landed too late for any listing to read it, and is reported.
    The horizon moves on at a sweep only (at every re-listing if there are none), so that
    nothing lands between what the sweeps and what the re-listings look at."""
    horizon, end, keep_from = position.horizon(), position.window_start(), position.keep_from()
    dates = []
    for item in _listed(server, position.start_after(server, None if sweep else keep_from),
                        dates):
        if item is not PAUSE and item.epoch >= end:
            break
        if item is PAUSE or item.epoch >= horizon and not position.done(item):
            yield item
        elif item.epoch < keep_from:
            _report_landed_behind(position, item)
        elif not position.done(item):
            nxlog.log_warning("%s: %s landed more than LATE_HORIZON=%d s behind the newest "
                              "object read, so it is not read: read it by hand, or raise "
                              "NXLOG_S3_LATE_HORIZON" % (SCRIPT, _quoted(item.key),
                                                         LATE_HORIZON))
            position.mark(item)
    if sweep:
        position.swept_at = dates[0] if dates else time.time()
    if sweep or not SWEEP_INTERVAL:
        position.finish_late(horizon)


def _report_landed_behind(position, item):
    """A sweep came across ITEM behind the horizon: if S3 stored it after the last sweep,
    no listing read it. (The first sweep cannot tell, and only notes the time.)"""
    if position.swept_at is not None and \
            item.modified >= position.swept_at - LANDING_MARGIN:
        _report_other_key(item.key, "S3 stored it at %s, more than LATE_HORIZON=%d s behind "
                          "the newest object read; read it by hand" % (
                              _utc_text(item.modified), LATE_HORIZON))


def _sweep_due(position):
    return SWEEP_INTERVAL > 0 and (position.swept_at is None or
                                   time.time() >= position.swept_at + SWEEP_INTERVAL)


# ---- Decoding -----------------------------------------------------------------------------

class _RawBody(io.RawIOBase):
    """botocore's StreamingBody as a raw stream, so that io and gzip can buffer and peek it."""

    def __init__(self, body):
        io.RawIOBase.__init__(self)
        self.body = body

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.body.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


DECODE_ERRORS = (OSError, EOFError, zlib.error) + ((zstandard.ZstdError,) if zstandard else ())


def _decompressing(response, metadata):
    """The object's body as a stream, decompressed as it is read."""
    stream = io.BufferedReader(_RawBody(response["Body"]), 1 << 16)
    compression = metadata.get(METADATA_COMPRESSION)
    if compression is None:  # not ours: trust Content-Encoding, or the gzip signature
        gzipped = response.get("ContentEncoding") == "gzip" or stream.peek(2)[:2] == GZIP_MAGIC
        compression = "gzip" if gzipped else "none"
    if compression == "none":
        return stream
    if compression == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if compression == "zstd":
        if zstandard is None:
            raise UndecodableObject("it is zstd-compressed: install the zstandard package for "
                                    "the Python NXLog runs")
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(stream))
    raise UndecodableObject("unknown %s %r" % (METADATA_COMPRESSION, compression))


def _text(body, key):
    try:
        return body.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        nxlog.log_warning("%s: %s is not valid UTF-8; its undecodable bytes are kept as \\x "
                          "escapes" % (SCRIPT, _quoted(key)))
        return body.decode("utf-8", "backslashreplace")


def _where(line):
    """Where in an object a problem is, for its message: in line number LINE, or the whole."""
    return "line %d" % line if line else "its body"


_JSON = json.JSONDecoder()


def _parsed_json(text):
    """json.loads(TEXT), a third faster for what a batch line is (JSON and nothing around
    it); anything else goes through json.loads itself, which also words the errors."""
    try:
        value, end = _JSON.raw_decode(text)
        if end == len(text):
            return value
    except ValueError:
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
    if not isinstance(fields, dict):  # JSON's names are always text
        raise UndecodableObject("%s does not hold an object of fields" % _where(line))
    return fields


def _pickled_fields(body):
    if not ALLOW_PICKLE:
        raise UndecodableObject("it is a pickle, and unpickling runs code: set "
                                "NXLOG_S3_ALLOW_PICKLE=true only if you trust every writer "
                                "to this bucket")
    try:
        fields = pickle.loads(body)
    except Exception as exc:  # unpickling can raise anything
        raise UndecodableObject("invalid pickle: %s" % exc) from None
    if not isinstance(fields, dict) or not all(isinstance(name, str) for name in fields):
        raise UndecodableObject("the pickle does not hold a dict of fields")
    return fields


def _one_event(key, body, body_format):
    """The event of an object that holds one. No metadata: the old scripts' (a pickle when it
    starts like one, else raw text) or another tool's (raw text)."""
    if body_format is None:
        body_format = "pickle" if PICKLE_MAGIC.match(body) else "raw"
    if body_format == "raw":
        return {"raw_event": _text(body, key)}
    if body_format == "json":
        return _json_fields(body)
    if body_format == "pickle":
        return _pickled_fields(body)
    raise UndecodableObject("unknown %s %r (written by a newer s3_write.py?)"
                            % (METADATA_FORMAT, body_format))


def _bounded_read(read, line=None):
    """READ(limit) within MAX_EVENT_BYTES: an event that large (in line number LINE, or in
    the object) is taken for what it most likely is, a decompression bomb or not a log."""
    data = read(MAX_EVENT_BYTES + 1 if MAX_EVENT_BYTES else -1)
    if MAX_EVENT_BYTES and len(data) > MAX_EVENT_BYTES and not (
            len(data) == MAX_EVENT_BYTES + 1 and data.endswith(b"\n")):
        raise UndecodableObject("%s is larger than MAX_EVENT_BYTES=%d once decompressed (a "
                                "decompression bomb?); raise NXLOG_S3_MAX_EVENT_BYTES, or set "
                                "it to 0 for no limit" % (_where(line), MAX_EVENT_BYTES))
    return data


def _line_events(key, stream, body_format):
    """The events of an object that holds one per line: a batch (JSON lines) or, with
    RAW_LINES, a text object without metadata."""
    if not isinstance(stream, io.BufferedReader):  # GzipFile: its readline is Python code,
        stream = io.BufferedReader(stream, 1 << 16)  # a buffer over it reads lines in C
    for number in itertools.count(1):
        line = _bounded_read(stream.readline, number)
        if not line:
            return
        line = line.rstrip(b"\n")
        if body_format == "jsonl":
            if line:
                yield _json_fields(line, number)
        else:
            yield {"raw_event": _text(line.rstrip(b"\r"), key)}


def _events(key, response):
    """The events of one object, as field dicts, by what its metadata says it holds. They
    stream: memory stays bounded whatever the object's size."""
    metadata = response.get("Metadata", {})
    body_format = metadata.get(METADATA_FORMAT)
    stream = _decompressing(response, metadata)
    if body_format == "jsonl" or (body_format is None and RAW_LINES):
        return _line_events(key, stream, body_format)
    return iter([_one_event(key, _bounded_read(stream.read), body_format)])


# ---- Reading ------------------------------------------------------------------------------

def _event_maker(module):
    return getattr(module, "logdata_new", None) or module.new_logdata  # current, else legacy


def _schedule(module, delay):
    set_timer = getattr(module, "set_read_timer", None) or module.add_read_event
    set_timer(delay)


_pool = None  # the fetch threads, started at the first call
_open = None  # (key, events, response) of the large object a call stopped in


def _fetch_whole(key):
    """GETs KEY and reads its body whole: what the fetch threads do for small objects."""
    response = _s3().get_object(Bucket=BUCKET, Key=key)
    response["Body"] = io.BytesIO(response["Body"].read())
    return response


class Round(object):
    """One pass over a server's new objects (ITEMS, Listed in reading order, and PAUSE now
    and then), which may take several calls: the listing goes on where the last call
    stopped, and the small objects fetched ahead (FETCH_THREADS of them, by the fetch
    threads) wait for their turn. LATE tells a re-listing of the horizon from a poll's pass
    over the window."""

    def __init__(self, position, items, late=False):
        self.items = (item for item in items
                      if item is PAUSE or not _tried_lately(position, item.key))
        self.late = late
        self.over = False  # the listing came to its end
        self.ahead = collections.deque()  # (item, future, or None for a large object)

    def next(self, deadline):
        """The next (item, future) in key order; PAUSE if the listing is still going after
        DEADLINE with nothing to read yet; None once the pass is over."""
        global _pool
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(FETCH_THREADS,
                                                          thread_name_prefix=SCRIPT)
        while not self.over and len(self.ahead) <= FETCH_THREADS:
            item = next(self.items, None)
            if item is None:
                self.over = True
            elif item is PAUSE:
                if time.monotonic() > deadline:
                    break
            else:
                small = item.size <= WHOLE_OBJECT
                self.ahead.append((item, _pool.submit(_fetch_whole, item.key) if small
                                   else None))
        if self.ahead:
            return self.ahead.popleft()
        return None if self.over else PAUSE

    def again(self, entry):
        """ENTRY's object is not done yet: it comes first in the next call."""
        self.ahead.appendleft(entry)


def _close_open():
    global _open
    if _open is not None:
        _open[2]["Body"].close()
        _open = None


def _events_to_post(position, key, future):
    """The events of KEY not posted yet: where the last call stopped in it, or from a new GET
    past the events a crashed run had posted already."""
    global _open
    if _open is not None and _open[0] == key:
        return _open[1]
    _close_open()
    response = future.result() if future else _s3().get_object(Bucket=BUCKET, Key=key)
    events = _events(key, response)
    _open = (key, events, response)
    for _ in itertools.islice(events, position.partial.get(key, 0)):
        pass
    return events


def _read_object(module, position, key, future, deadline):
    """Posts the events of KEY; False if the call's time ran out inside it, where the next
    call goes on. Raises UndecodableObject, or botocore's errors. How many of its events are
    posted is kept in the checkpoint, so that neither the next call, nor a retry after an
    error partway, nor a restarted reader posts one twice."""
    posted = already = position.partial.get(key, 0)
    new_event = _event_maker(module)
    try:
        for fields in _events_to_post(position, key, future):
            event = new_event()
            for name, value in fields.items():
                event.set_field(name, value)
            event.post()
            posted += 1
            if posted % CLOCK_EVERY == 0 and time.monotonic() > deadline:
                return False
    except (BotoCoreError, ClientError):  # the network or S3, not the object: a later poll
        _close_open()                       # tries again, and this is no failed attempt
        raise
    except DECODE_ERRORS as exc:
        _close_open()
        raise UndecodableObject("cannot decompress it: %s" % exc) from None
    except BaseException:
        _close_open()
        raise
    finally:
        if posted > already:
            position.partial[key] = posted
    _close_open()
    return True


def _give_up_now(position, key, reason):
    """Counts a failed read of KEY; True once it has failed MAX_ATTEMPTS times and is set
    aside (reported, marked as read, left in the bucket)."""
    count = position.attempts.pop(key, [0, 0])[0] + 1
    if count >= MAX_ATTEMPTS:
        nxlog.log_error("%s: set aside %s after %d failed attempts: %s; it stays in the "
                        "bucket, the objects after it are read" % (SCRIPT, _quoted(key), count,
                                                                   reason))
        return True
    position.attempts[key] = [count, time.time()]
    nxlog.log_warning("%s: cannot read %s (attempt %d of %d): %s; it is tried again at a "
                      "later poll" % (SCRIPT, _quoted(key), count, MAX_ATTEMPTS, reason))
    return False


def _tried_lately(position, key):
    """Whether KEY failed less than POLL_INTERVAL ago: attempts are a poll apart (and a
    clock set back does not hold them off)."""
    attempt = position.attempts.get(key)
    return attempt is not None and 0 <= time.time() - attempt[1] < POLL_INTERVAL


def _after_read(key):
    if AFTER_READ == "keep":
        return
    try:
        if AFTER_READ == "move":
            _s3().copy({"Bucket": BUCKET, "Key": key}, BUCKET, MOVE_PREFIX + key)
        _s3().delete_object(Bucket=BUCKET, Key=key)
    except (BotoCoreError, ClientError) as exc:
        nxlog.log_warning("%s: read %s, but could not %s it: %s; it stays where it is"
                          % (SCRIPT, _quoted(key), AFTER_READ, exc))


def _next_entry(server, position, deadline):
    """The next object of SERVER to read, and its fetch: from the round under way, else from a
    new pass over the window; once that is over, from a re-listing of the horizon if one is
    due. None once SERVER has caught up; PAUSE if a long listing goes on at the next call."""
    while True:
        if server not in _rounds:
            _rounds[server] = Round(position, _window_keys(server, position))
        entry = _rounds[server].next(deadline)
        if entry is not None:
            return entry
        finished = _rounds.pop(server)
        if finished.late:
            _late_due[server] = time.monotonic() + LATE_INTERVAL
            _save_state(_state)  # where the re-listing began, for the next one
            return None
        if position.newest is None or _late_due.get(server, 0) > time.monotonic():
            return None
        _rounds[server] = Round(position, _late_keys(server, position, _sweep_due(position)),
                                late=True)


def _read_server(module, server, budget, deadline):
    """Posts the events of up to BUDGET new objects of SERVER, until DEADLINE. Returns what
    is left of the budget, and whether SERVER has caught up."""
    position = _state.position(server)
    while budget and time.monotonic() <= deadline:
        entry = _next_entry(server, position, deadline)
        if entry is None:
            return budget, True
        if entry is PAUSE:
            return 0, False
        item, future = entry
        budget -= 1
        try:
            if not _read_object(module, position, item.key, future, deadline):
                _rounds[server].again(entry)
                _save_state(_state)
                return 0, False
        except UndecodableObject as exc:
            if not _give_up_now(position, item.key, exc):
                _save_state(_state)
                continue
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            if status >= 500:
                raise  # S3 itself is in trouble: this poll ends, the next one tries again
            if _error_code(exc) != "NoSuchKey" and not _give_up_now(position, item.key, exc):
                _save_state(_state)
                continue
        _done_with(position, item)
    return budget, False


def _done_with(position, item):
    """ITEM was read (or set aside, or is gone): recorded in the checkpoint, then kept, moved
    or deleted as AFTER_READ says."""
    position.attempts.pop(item.key, None)
    position.partial.pop(item.key, None)
    position.mark(item)
    _save_state(_state)
    ahead = item.epoch - time.time()
    if ahead > MAX_AHEAD:
        _log_limited("ahead", nxlog.log_warning, "%s is dated %d s ahead of this host's clock "
                     "(more than MAX_AHEAD=%d): it was read, but the reader takes the newest "
                     "object to be the one before it" % (_quoted(item.key), ahead, MAX_AHEAD))
    _after_read(item.key)


_state = None  # loaded from CHECKPOINT at the first call
_rounds = {}  # server -> its Round under way
_late_due = {}  # server -> when (monotonic) its next re-listing is due; at once if missing
_turn = 0  # the server the next call starts with, so that a busy one starves no other


def _read_objects(module):
    """Posts the events of up to MAX_OBJECTS_PER_CALL new objects, for up to
    MAX_SECONDS_PER_CALL; True if it stopped before every server had caught up."""
    global _state, _turn
    if _state is None:
        _state = _load_state()
    _keep_lock(_state)
    if _unsaved:
        _save_state(_state)
    servers = _server_names()
    budget, deadline = MAX_OBJECTS_PER_CALL, time.monotonic() + MAX_SECONDS_PER_CALL
    for index in range(len(servers)):
        budget, caught_up = _read_server(module, servers[(_turn + index) % len(servers)],
                                         budget, deadline)
        if not caught_up:
            _turn = (_turn + index + 1) % len(servers)
            return True
    return False


def _start_over():
    """After an error: the next call lists again from the checkpoint."""
    _rounds.clear()
    _close_open()


def _problem(exc):
    """What kind of lasting trouble EXC is, so that it is logged once a minute, not per poll."""
    return _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__


def read_data(module):
    """Called by NXLog. Schedules exactly one next call, whatever happens in this one."""
    delay = POLL_INTERVAL
    try:
        if _read_objects(module):
            delay = MORE_WAITING_DELAY
    except CheckpointError as exc:
        _start_over()
        _log_limited("checkpoint", nxlog.log_error, "%s (trying again every %s s)"
                     % (exc, POLL_INTERVAL))
    except (BotoCoreError, ClientError) as exc:
        _start_over()
        _log_limited(_problem(exc), nxlog.log_error, "cannot read s3://%s/ now: %s; trying "
                     "again every %s s" % (BUCKET, exc, POLL_INTERVAL))
    except Exception:
        _start_over()
        _log_limited("unexpected", nxlog.log_error, "unexpected error, trying again every %s "
                     "s: %s" % (POLL_INTERVAL, traceback.format_exc()))
    finally:
        _schedule(module, delay)


read_event = read_data  # the old scripts' name, for configurations that say `Call read_event`


def stop():
    """Ends this instance as the end of its process would: the checkpoint is let go. NXLog
    never calls it (it has no shutdown hook); tests and programs that embed the script do."""
    global _lock_fd, _pool, _state
    _start_over()
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    if _lock_fd is not None:
        os.close(_lock_fd)
        _lock_fd, _state = None, None

_private_directory(os.path.dirname(os.path.abspath(CHECKPOINT)), "CHECKPOINT")
_check_connection()
nxlog.log_info("%s: reading s3://%s/ for %s, checkpoint %s" % (
    SCRIPT, BUCKET, "every server" if SERVER == "*" else ", ".join(SERVER),
    os.path.abspath(CHECKPOINT)))
