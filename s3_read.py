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

Run as a command, outside NXLog: python3 s3_read.py check (would NXLog start?), status
(where the reader is, how far behind, what it set aside), audit (is the archive complete?) or
replay (the events of a time range); --help says more.
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
MAX_EVENT_BYTES = 16777216  # an event (a line, or a whole object) larger than this, once
                            # decompressed, makes its object undecodable: a decompression
                            # bomb cannot exhaust memory (reading takes some 4 times the
                            # largest event); 0: no limit (MAX_EXPANSION's too)
MAX_EXPANSION = 1000        # an object that decompresses to more than this many times its
                            # size (and to more than MAX_EVENT_BYTES) is undecodable too
AFTER_READ = "keep"         # keep, delete, or move (to MOVE_PREFIX) each object once read
MOVE_PREFIX = ""            # with AFTER_READ=move: where objects go, e.g. read/
RETRY_MODE = "standard"     # botocore retry mode: standard or adaptive
RETRY_ATTEMPTS = 5          # attempts per S3 request, the first one included
TLS_VERIFY = True           # check the endpoint's TLS certificate (AWS_CA_BUNDLE names a
                            # private CA); false only for a test endpoint, never in production
CONNECT_TIMEOUT = 10        # seconds
READ_TIMEOUT = 60           # seconds
METRICS_FILE = ""           # e.g. /var/lib/node_exporter/textfile/s3_read.prom: Prometheus
                            # metrics, rewritten every 5 s; empty: none
# ---- End of settings ---------------------------------------------------------------------

import argparse
import base64
import calendar
import collections
import concurrent.futures
import datetime
import email.utils
import errno
import functools
import gzip
import io
import itertools
import json
import os
import pickle
import queue
import re
import socket
import stat
import sys
import tempfile
import threading
import time
import traceback
import zlib

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

try:
    import nxlog
except ImportError:  # run as a command (python3 SCRIPT.py check), not by NXLog
    nxlog = None
try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one instance per folder is up to the user
    fcntl = None
try:
    import zstandard
except ImportError:
    zstandard = None

METADATA_FORMAT = "nxlog-s3-format"
METADATA_COMPRESSION = "nxlog-s3-compression"
METADATA_TIMES = "nxlog-s3-times"  # zoned: datetime fields are ISO 8601 with their offset
GZIP_MAGIC = b"\x1f\x8b"
PICKLE_MAGIC = re.compile(b"^\x80[\x02-\x05]")  # what a pickle of protocol 2 to 5 starts with
MORE_WAITING_DELAY = 0.01  # seconds to the next call when a call stopped at its bound
CHECKPOINT_VERSION = 3  # 3: the horizon's seconds in CHECKPOINT.late
WHOLE_OBJECT = 8 * 1024 * 1024  # objects up to this size are fetched ahead, whole, by the
                                # fetch threads; larger ones stream as they are posted
REMEMBERED_OTHER_KEYS = 1000  # keys outside the scheme remembered as reported, at the most
REPORTED_BY_NAME = 20  # keys not readable named one by one in a call; the others counted
REMEMBERED_SET_ASIDE = 1000  # objects set aside kept per server in the checkpoint, for status
CLOCK_EVERY = 1000  # events between two looks at the clock inside a streamed object
WAIT_STEP = 0.05  # seconds a listing waits for S3's next page before it lets the call see
STREAMED_CHUNK = 1024  # events an object's decoding thread hands read_data at a time...
CHUNK_BYTES = 4 << 20  # ...or fewer, once they decoded from this many bytes...
STREAMED_AHEAD = 2  # ...and chunks it keeps ready
LANDING_MARGIN = 300  # seconds a sweep looks before the last one: clocks and slow uploads
SECOND_FORMAT = "%Y-%m-%d/%H.%M.%S"

# ---- Shared with the other script: written in from src/shared.py by `make scripts` ----------
SCRIPT = os.path.splitext(os.path.basename(__file__))[0]
EXIT_CONFIG = 78  # NXLog's exit status when a setting can never work (sysexits' EX_CONFIG)
EXIT_WARNED = 1  # a command's: it worked, but logged a warning or an error (see README.md)


class _StderrLog(object):
    """NXLog's log functions for a script run as a command: each line on stderr."""

    @staticmethod
    def _line(level, message):
        sys.stderr.write("%s %s\n" % (level, message))

    def log_debug(self, message):
        pass

    def log_info(self, message):
        self._line("INFO", message)

    def log_warning(self, message):
        self._line("WARNING", message)

    def log_error(self, message):
        self._line("ERROR", message)


NXLOG = nxlog if nxlog is not None else _StderrLog()  # where log lines go


class ConfigError(ValueError):
    """A setting that can never work: NXLog does not start, and one line names the setting."""


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


def _metrics_file(text):
    """METRICS_FILE: empty (none), or a file node_exporter's textfile collector reads."""
    value = text.strip()
    if value and not value.endswith(".prom"):
        raise ValueError("node_exporter's textfile collector reads only files named *.prom")
    return value


class Settings(object):
    """Every setting of a script, parsed and checked once: an attribute named as the setting
    (BUCKET, SERVER, ...). NXLOG_S3_<NAME> in ENVIRON wins over DEFAULTS, the values at the
    top of the script SOURCE. A bad value raises ConfigError naming where it came from."""

    SPEC = ()  # (NAME, parser) for each setting: the script's subclass says

    def __init__(self, defaults, environ, source, flags=None):
        for name, parse in self.SPEC:
            text, where = self._source(name, defaults, environ, source, flags or {})
            try:
                setattr(self, name, parse(text))
            except ValueError as exc:
                raise ConfigError("%s: %s=%r is not valid: %s"
                                  % (SCRIPT, where, text, exc)) from None
        self.check()

    @staticmethod
    def _source(name, defaults, environ, source, flags):
        """NAME's text, and where it came from: a command's flag, the environment, the top
        of the script, in that order."""
        if flags.get(name) is not None:
            return flags[name], "--" + _flag_name(name)
        variable = "NXLOG_S3_" + name
        if variable in environ:
            return environ[variable], variable
        return str(defaults[name]), "%s at the top of %s" % (name, source)

    @classmethod
    def defaults_in(cls, namespace):
        """The values at the top of the script: its module's NAMESPACE (globals())."""
        return {name: namespace[name] for name, _ in cls.SPEC}

    @classmethod
    def of_script(cls, namespace, source, flags=None):
        """The settings of the script SOURCE, whose module's NAMESPACE holds the values at
        its top, as NXLog or a command (FLAGS) finds them."""
        return cls(cls.defaults_in(namespace), os.environ, source, flags)

    def check(self):
        """Raises ConfigError for settings that are each valid but cannot work together."""

    def owner(self):
        """The ExpectedBucketOwner argument, where the settings name one."""
        owner = getattr(self, "EXPECTED_BUCKET_OWNER", "")
        return {"ExpectedBucketOwner": owner} if owner else {}


class Clock(object):
    """The time as the scripts read it, and their waits. Tests pass another with the same
    methods, as botocore's retry handler is given its sleep."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)  # after monotonic: from here on, `time` is this one

    @staticmethod
    def sleep(seconds, interrupt=None):
        """Waits SECONDS, or less once INTERRUPT (a threading.Event) is set."""
        if interrupt is None:
            time.sleep(seconds)
        else:
            interrupt.wait(seconds)


class Log(object):
    """NXLog's log, each line led by the script's name; a lasting problem at most once
    every EVERY seconds, with a count of the times not logged."""

    EVERY = 60

    def __init__(self, clock):
        self.clock = clock
        self.last = {}  # problem -> (when last logged, times since)
        self.lock = threading.Lock()
        self.problems = 0  # warnings and errors logged: a command's exit status tells

    def info(self, message):
        NXLOG.log_info("%s: %s" % (SCRIPT, message))

    def warning(self, message):
        self.problems += 1
        NXLOG.log_warning("%s: %s" % (SCRIPT, message))

    def error(self, message):
        self.problems += 1
        NXLOG.log_error("%s: %s" % (SCRIPT, message))

    def limited(self, problem, log, message):
        """LOG(MESSAGE) (self.warning or self.error), unless PROBLEM was logged lately."""
        with self.lock:
            now = self.clock.monotonic()
            when, since = self.last.get(problem, (None, 0))
            if when is not None and now - when < self.EVERY:
                self.last[problem] = (when, since + 1)
                return
            self.last[problem] = (now, 0)
        log(message + (" (%s since the last such message)" % count(since, "time")
                       if since else ""))

    def times_not_logged(self, problem):
        return self.last.get(problem, (None, 0))[1]


class Disk(object):
    """The file-system calls whose failures the scripts must survive (short writes, full
    disks), in one place, so that tests can make them fail without patching os."""

    write = staticmethod(os.write)
    fsync = staticmethod(os.fsync)
    ftruncate = staticmethod(os.ftruncate)

    def write_atomically(self, path, data, sync=True, mode=None):
        """Temporary file, fsync, rename, fsync of the folder: at any crash PATH holds its
        old bytes or DATA, whole; readable by its owner only, unless MODE says otherwise.
        SYNC=False leaves the fsyncs to the OS."""
        directory = os.path.dirname(os.path.abspath(path))
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp.")
        try:
            if mode is not None:
                os.chmod(temporary, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if sync:
                    self.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
        if sync:
            self.fsync_directory(directory)

    def fsync_directory(self, directory):
        """Makes a rename in DIRECTORY durable. Windows has no such call (nor needs it)."""
        if hasattr(os, "O_DIRECTORY"):
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                self.fsync(fd)
            finally:
                os.close(fd)


def new_client(settings, connections, attempts=None, timeout_cap=None):
    """An S3 client from the standard AWS chain, with botocore's retries and timeouts and a
    connection pool for CONNECTIONS threads. Thread-safe: a script's threads share one."""
    cap = timeout_cap or max(settings.CONNECT_TIMEOUT, settings.READ_TIMEOUT)
    config = Config(retries={"mode": settings.RETRY_MODE,
                             "total_max_attempts": attempts or settings.RETRY_ATTEMPTS},
                    connect_timeout=min(settings.CONNECT_TIMEOUT, cap),
                    read_timeout=min(settings.READ_TIMEOUT, cap),
                    max_pool_connections=max(10, connections))
    return boto3.session.Session().client("s3", config=config,
                                          verify=None if settings.TLS_VERIFY else False)


NO_CREDENTIALS = ("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                  "AWS_SECRET_ACCESS_KEY, for the user NXLog runs as, or give the host an "
                  "instance role")


def check_bucket(settings, client, log):
    """At start, one request. A bucket that does not exist can never work: ConfigError.
    What may pass by itself (no credentials yet at boot, S3 not answering) is logged, and
    left to the uploads or polls, which retry."""
    if not settings.TLS_VERIFY:
        log.warning("TLS_VERIFY is off: whoever sits between this host and S3 can read and "
                    "change what is sent")
    try:
        client.head_bucket(Bucket=settings.BUCKET, **settings.owner())
    except NoCredentialsError:
        log.warning(NO_CREDENTIALS + "; trying again until there are")
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchBucket"):
            raise ConfigError("%s: the bucket %s does not exist (BUCKET, or NXLOG_S3_BUCKET); "
                              "this script never creates one" % (SCRIPT, settings.BUCKET)) from None
    except BotoCoreError as exc:
        log.warning("S3 does not answer yet (%s); trying again until it does" % exc)


def probe_client(settings):
    """The client of the start-up check: one quick attempt, so that NXLog's start waits on
    S3 for seconds at most."""
    return new_client(settings, 1, attempts=1, timeout_cap=5)


def refuse_to_start(exc):
    """What NXLog does with a bad directive: one line in its log, and no start (an exception
    at import would leave NXLog running, this module deaf). Its inputs have read nothing."""
    NXLOG.log_error(str(exc))
    os._exit(EXIT_CONFIG)


def _flag_name(name):
    return name.lower().replace("_", "-")


def check_command(part, arguments):
    """`check`: what NXLog's start of PART (a Writer or Reader) would check, with the line it
    would log at start on stdout; its warnings on stderr, and EXIT_WARNED for them."""
    print("%s: NXLog would start: %s" % (SCRIPT, part.check()))
    return EXIT_WARNED if part.log.problems else 0


JSON_OPTION = ("--json", {"action": "store_true", "help": "one JSON object, for programs"})


def run_command(argv, kind, namespace, source, commands):
    """The script as a command, with no NXLog: COMMANDS maps each command's name to (its
    help, a function returning an exit status, its options). Settings come from the
    same places as under NXLog, and flags override them. A setting that can never work
    exits with EXIT_CONFIG and the message NXLog would log. A command's OPTIONS are
    (flag, argparse keywords) pairs; its function is given the settings and the arguments."""
    defaults = kind.defaults_in(namespace)
    parser = argparse.ArgumentParser(
        prog=os.path.basename(source), description="%s run as a command, outside NXLog. "
        "Exit status: 0 done; %d done, with a warning on stderr; 2 bad usage; %d a setting "
        "that can never work (NXLog would not start)." % (SCRIPT, EXIT_WARNED, EXIT_CONFIG))
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    subcommands.required = True
    for name, (summary, _, options) in sorted(commands.items()):
        command = subcommands.add_parser(name, help=summary, description=summary)
        for flag, keywords in options:
            command.add_argument(flag, **keywords)
        group = command.add_argument_group("settings (each overrides NXLOG_S3_<NAME> and the "
                                           "top of %s)" % os.path.basename(source))
        for setting, _ in kind.SPEC:
            group.add_argument("--" + _flag_name(setting), dest=setting, metavar="VALUE",
                               help="%s (default: %r)" % (setting, defaults[setting]))
    arguments = parser.parse_args(argv)
    flags = {name: getattr(arguments, name) for name, _ in kind.SPEC}
    try:
        return commands[arguments.command][1](kind.of_script(namespace, source, flags),
                                              arguments)
    except ConfigError as exc:
        NXLOG.log_error(str(exc))
        return EXIT_CONFIG


def private_directory(directory, setting, log, own=False, make=True):
    """Makes DIRECTORY (its owner's only) if need be; refuses one this process cannot use,
    or one every user may write to (anyone could plant or swap the files it holds). OWN: a
    folder of the script's alone (SPOOL_DIR), made its owner's only if it was not. MAKE=False
    (a check) makes nothing: a missing folder must be one this process could make. Returns
    whether the folder exists."""
    where = "%s (%s)" % (os.path.abspath(directory), setting)
    if not make and not os.path.isdir(directory):
        parent = os.path.dirname(os.path.abspath(directory))
        while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
            parent = os.path.dirname(parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError("%s: cannot make the folder %s: %s is not writable by this "
                              "process (the user NXLog runs as)" % (SCRIPT, where, parent))
        return False
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
            log.warning("cannot make the folder %s its owner's only: %s" % (where, exc))
    return True


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # Windows has no such flag (nor such links)
FILE_FLAGS = {"rb": os.O_RDONLY, "r+b": os.O_RDWR}


def open_nofollow(path, mode="rb"):
    """open(PATH, MODE) that refuses a symbolic link at PATH (OSError ELOOP): a link planted
    where a script keeps its files cannot make it read or write another file."""
    return os.fdopen(os.open(path, FILE_FLAGS[mode] | NOFOLLOW), mode)


def exclusive_lock(path):
    """A descriptor that holds an exclusive lock on PATH (made readable by its owner only, a
    link there refused), or None while another process or instance holds it. Windows has no
    such locks."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
    return fd


def lock_held(path):
    """Whether another process holds the lock PATH now: taken and let go at once, and no
    file made where there is none (nobody holds it then)."""
    if not os.path.exists(path):
        return False
    fd = exclusive_lock(path)
    if fd is not None:
        os.close(fd)
    return fd is None


def quoted(bucket, key):
    """KEY's address as log lines show it: quoted, with control characters escaped, so that a
    key cannot forge a log line."""
    return repr("s3://%s/%s" % (bucket, key))


def error_code(exc):
    return exc.response.get("Error", {}).get("Code", "")


def utc_text(epoch):
    """EPOCH as the scripts write times out: UTC, with its zone (2026-11-28T10:00:00Z)."""
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % time.gmtime(epoch)[:6]  # %Y: "1" for year 1


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


def count(number, noun, plural=None):
    """'1 event', '2 events'."""
    return "%d %s" % (number, noun if number == 1 else plural or noun + "s")


@functools.lru_cache(maxsize=None)
def parquet_library():
    """pyarrow, with its compute, json and parquet modules, imported at its first use (it
    takes some 50 MB, which only Parquet batches need); None where it is not installed."""
    try:
        import pyarrow.compute
        import pyarrow.json
        import pyarrow.parquet
    except ImportError:
        return None
    return pyarrow


METRICS_EVERY = 5.0  # seconds between two rewrites of METRICS_FILE
METRICS_MODE = 0o644  # node_exporter runs as another user; the file holds counts, no data


def _label_value(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics(object):
    """METRICS_FILE, for node_exporter's textfile collector: what SAMPLES() gives, (name,
    type, help, labels, value) tuples, in Prometheus' text format, rewritten atomically
    every METRICS_EVERY seconds by a thread of its own, and once more at stop. Nothing at all
    when the setting is empty."""

    def __init__(self, path, samples, clock, disk, log):
        self.path, self.samples, self.clock, self.disk, self.log = (
            path and os.path.abspath(path), samples, clock, disk, log)
        self.stopping = threading.Event()
        self.thread = None

    def check(self):
        """Raises ConfigError unless METRICS_FILE's folder exists and this process may write
        there (node_exporter's folder is made by whoever installs it, not by this script)."""
        folder = os.path.dirname(self.path or "")
        if self.path and not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):
            raise ConfigError("%s: cannot write METRICS_FILE=%s: the folder %s does not exist, "
                              "or this process (the user NXLog runs as) may not write there"
                              % (SCRIPT, self.path, folder))

    def start(self):
        """Writes the file once (it is there as soon as the script has started), then every
        METRICS_EVERY seconds. The script's start has made check() before anything else."""
        if self.path:
            self.write()
            self.thread = threading.Thread(target=self._run, daemon=True,
                                           name="%s metrics" % SCRIPT)
            self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            self.clock.sleep(METRICS_EVERY, self.stopping)
            self.write()

    def write(self):
        try:
            self.disk.write_atomically(self.path, self.text().encode(), sync=False,
                                       mode=METRICS_MODE)
        except OSError as exc:
            self.log.limited("metrics", self.log.warning, "cannot write METRICS_FILE %s: %s"
                             % (self.path, exc))

    def text(self):
        """The samples in Prometheus' text format: each metric's HELP and TYPE, then its
        samples, one metric after the other."""
        families = collections.OrderedDict()
        for name, kind, summary, labels, value in self.samples():
            family = families.setdefault(name, ["# HELP %s %s" % (name, summary),
                                                "# TYPE %s %s" % (name, kind)])
            family.append("%s{%s} %s" % (name, ",".join(
                '%s="%s"' % (label, _label_value(labels[label])) for label in sorted(labels)),
                repr(float(value)) if isinstance(value, float) else int(value)))
        return "".join(line + "\n" for family in families.values() for line in family)

    def stop(self):
        if self.thread is not None:
            self.stopping.set()
            self.thread.join()
            self.thread = None
            self.write()
# ---- End of the shared code ---------------------------------------------------------------


# ---- The reader's settings ----------------------------------------------------------------

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


class ReaderSettings(Settings):
    """The settings at the top of this file, parsed; also SEAL_EVERY, the seconds of key
    time between two rewrites of the checkpoint's .late file."""

    SPEC = (
        ("BUCKET", _bucket), ("SERVER", _servers), ("CHECKPOINT", _path),
        ("POLL_INTERVAL", _number(float, 0.01)), ("LOOKBACK", _number(int, 0)),
        ("LATE_HORIZON", _number(int, 0)), ("LATE_INTERVAL", _number(float, 0)),
        ("SWEEP_INTERVAL", _number(float, 0)), ("MAX_AHEAD", _number(int, 0)),
        ("KEY_TIME", _choice("utc", "local")), ("START_AT", _choice("beginning", "now")),
        ("MAXKEYS", _number(int, 1, 1000)), ("MAX_OBJECTS_PER_CALL", _number(int, 1)),
        ("MAX_SECONDS_PER_CALL", _number(float, 0.01)), ("FETCH_THREADS", _number(int, 1, 64)),
        ("MAX_ATTEMPTS", _number(int, 1)), ("ALLOW_PICKLE", _flag),
        ("MAX_EVENT_BYTES", _number(int, 0)), ("MAX_EXPANSION", _number(int, 1)),
        ("RAW_LINES", _flag),
        ("AFTER_READ", _choice("keep", "delete", "move")), ("MOVE_PREFIX", _move_prefix),
        ("RETRY_MODE", _choice("standard", "adaptive")), ("RETRY_ATTEMPTS", _number(int, 1)),
        ("TLS_VERIFY", _flag), ("CONNECT_TIMEOUT", _number(float, 0.1)),
        ("READ_TIMEOUT", _number(float, 0.1)), ("METRICS_FILE", _metrics_file))

    def check(self):
        self.SEAL_EVERY = max(self.LOOKBACK, 60)
        if self.AFTER_READ == "move" and not self.MOVE_PREFIX:
            raise ConfigError("%s: AFTER_READ=move needs MOVE_PREFIX, where the objects go"
                              % SCRIPT)
        if self.MOVE_PREFIX and self.SERVER != "*" and any(
                self.MOVE_PREFIX.startswith(name + "/") for name in self.SERVER):
            raise ConfigError("%s: MOVE_PREFIX=%r is inside a SERVER's own prefix: moved "
                              "objects would be listed again" % (SCRIPT, self.MOVE_PREFIX))
        if self.MOVE_PREFIX.count("/") > 1 and self.SERVER == "*":
            raise ConfigError("%s: with SERVER=*, every first segment of a key is a server, so "
                              "MOVE_PREFIX=%r would move objects into one server's prefix: use "
                              "one segment, such as read/" % (SCRIPT, self.MOVE_PREFIX))
        if self.LATE_HORIZON < self.LOOKBACK:
            raise ConfigError("%s: LATE_HORIZON=%d is shorter than LOOKBACK=%d: the re-listing "
                              "for late objects must reach at least as far back as each poll "
                              "does" % (SCRIPT, self.LATE_HORIZON, self.LOOKBACK))


class CheckpointError(RuntimeError):
    """The checkpoint file cannot be used: the reader reads nothing until it is fixed. The
    message is logged with the script's name before it."""


class UndecodableObject(ValueError):
    """An object whose content cannot be turned into events; it stays in the bucket."""


# ---- Keys and time ------------------------------------------------------------------------

# One object listed: its key, the second, counter and suffix in it, that second's epoch, its
# size, when S3 stored it (epoch), and its ETag.
Listed = collections.namedtuple("Listed", "key second counter suffix epoch size modified etag")
PAUSE = object()  # what a listing yields now and then, so that a long one can wait for the
                  # next call instead of holding NXLog up
WAITING = object()  # what a listing's pages yield while S3 has not sent the next one


class Seconds(object):
    """The seconds of the key scheme (SECOND_FORMAT) in KEY_TIME, as text and as epochs."""

    def __init__(self, key_time):
        self.utc = key_time == "utc"
        self.epoch = functools.lru_cache(maxsize=65536)(self._epoch)  # every key listed asks

    def _epoch(self, second):
        """Seconds since the epoch of SECOND; ValueError for a date or time that cannot be
        (2026-02-30, 25.61.61)."""
        stamp = time.strptime(second, SECOND_FORMAT)
        epoch = int(calendar.timegm(stamp) if self.utc else time.mktime(stamp))
        if self.text(epoch) != second:  # strptime takes 60 and 61 seconds; local time has gaps
            raise ValueError("%s is not a time that exists" % second)
        return epoch

    def text(self, epoch):
        return time.strftime(SECOND_FORMAT, (time.gmtime if self.utc else time.localtime)(epoch))


# An object read is marked in its second by its counter and suffix: counter << 5 | the
# suffix's code. Code 0 stands for any suffix: an older checkpoint knew counters only.
SUFFIX_CODES = {suffix: code for code, suffix in enumerate(sorted(
    [""] + [kind + compression for kind in FORMAT_SUFFIXES.values()
            for compression in COMPRESSION_SUFFIXES.values()]), 1)}
SUFFIX_OF_CODE = {code: suffix for suffix, code in SUFFIX_CODES.items()}


def _mark(counter, suffix):
    return counter << 5 | SUFFIX_CODES[suffix]


def _marks_text(marks):
    """MARKS as text: each suffix's counters as ranges (1-3,7), with @SUFFIX but for marks of
    any suffix, the groups joined by ';' (1-3@.jsonl.gz;1@.parquet)."""
    by_code = collections.defaultdict(set)
    for mark in marks:
        by_code[mark & 31].add(mark >> 5)
    return ";".join(_ranges(counters) + ("@" + SUFFIX_OF_CODE[code] if code else "")
                    for code, counters in sorted(by_code.items()))


def _marks(text):
    """_marks_text's TEXT as marks; an older checkpoint's counters (1-3,7) as marks of any
    suffix."""
    if not isinstance(text, str):
        raise ValueError("counters %r are not text such as 1-3,7@.jsonl.gz" % (text,))
    marks = set()
    for group in filter(None, text.split(";")):
        ranges, at, suffix = group.partition("@")
        if at and suffix not in SUFFIX_CODES:
            raise ValueError("%r is not a suffix of the key scheme" % suffix)
        code = SUFFIX_CODES[suffix] if at else 0
        marks.update(counter << 5 | code for counter in _counters(ranges))
    return marks


def _ranges(counters):
    """{1, 2, 3, 7} as "1-3,7": the counters of a busy second take a few bytes, not pages."""
    runs = []
    for _, run in itertools.groupby(enumerate(sorted(counters)), lambda pair: pair[1] - pair[0]):
        run = [counter for _, counter in run]
        runs.append(str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1]))
    return ",".join(runs)


def _counters(text):
    """"1-3,7" as {1, 2, 3, 7}."""
    counters = set()
    for run in filter(None, text.split(",")):
        first, _, last = run.partition("-")
        counters.update(range(int(first), int(last or first) + 1))
    return counters


class Position(object):
    """How far the reader got in one server's objects.

    NEWEST is the newest second read, a key far ahead of this host's clock apart (MAX_AHEAD).
    The counters read, reported or set aside are kept for each second from keep_from() on:
    LATE_HORIZON behind NEWEST, or LATE_START (the horizon at the last sweep), whichever is
    older, and every second after it. Each poll lists from LOOKBACK behind NEWEST; the
    re-listing, every LATE_INTERVAL, lists from keep_from() up to there (see Listing.late).
    FLOOR (START_AT=now, or an older checkpoint taken up) is the time before which nothing is
    read.

    The seconds before SEALED are kept apart, in LATE, and saved in the checkpoint's .late
    file only when they change: saving after every object stays cheap however many seconds
    the horizon holds. Objects read behind SEALED (late ones) are noted in READ first, and
    moved to LATE a SEAL_EVERY at a time.
    """

    def __init__(self, rules, newest=None, read=None, floor=None, late_start=None, sealed=None,
                 attempts=None, partial=None, swept_at=None, set_aside=None, ids=None):
        self.rules = rules  # the Checkpoint: settings, seconds, clock
        self.newest = newest  # epoch of the newest second read, or None
        self.read = read or {}  # second -> set of marks (see _mark), from SEALED on
        self.late = {}  # the same, before SEALED
        self.floor = floor
        self.late_start = late_start  # the horizon (epoch) at the last sweep
        self.sealed = sealed
        self.swept_at = swept_at  # S3's time when the last sweep began (see Listing.late)
        self.late_changed = False  # LATE changed since the last save
        self.seconds_behind = 0  # seconds noted in READ behind SEALED since the last move
        self.pruned_to = None  # keep_from() at the last prune
        self.attempts = attempts or {}  # key -> [failed reads so far, when the last one was]
        self.partial = partial or {}  # key of an object read in part -> its events posted
        self.set_aside = set_aside or {}  # key not read -> [why, when (UTC text)], the latest
        self.ids = ids or {}  # with AFTER_READ delete or move: key read -> identity(), so that
                              # a key stored anew once the reader removed it is read

    def start_after(self, server, epoch):
        """A key before every object at or after EPOCH (and the floor): where a listing
        starts; None for the beginning."""
        starts = [start for start in (self.floor, epoch) if start is not None]
        return "%s/%s" % (server, self.rules.seconds.text(max(starts))) if starts else None

    def window_start(self):
        return None if self.newest is None else self.newest - self.rules.settings.LOOKBACK

    def horizon(self):
        return self.newest - self.rules.settings.LATE_HORIZON

    def keep_from(self):
        return self.horizon() if self.late_start is None else min(self.late_start,
                                                                   self.horizon())

    def done(self, item):
        """Whether ITEM was read (or reported, or set aside), or lies before the floor. An
        object is its key and, once the reader removes what it read, its identity too."""
        if self.floor is not None and item.epoch < self.floor:
            return True
        if item.key in self.ids and self.ids[item.key] != identity(item):
            return False
        mark = _mark(item.counter, item.suffix)
        return any(mark in marks or (mark & ~31) in marks
                   for marks in (self.read.get(item.second, ()),
                                 self.late.get(item.second, ())))

    def mark(self, item):
        """ITEM is done. It becomes the newest read if it is, unless it lies further ahead of
        this host's clock than MAX_AHEAD."""
        marks = self.read.setdefault(item.second, set())
        if not marks and self.sealed is not None and item.epoch < self.sealed:
            self.seconds_behind += 1
        marks.add(_mark(item.counter, item.suffix))
        if self.rules.settings.AFTER_READ != "keep":
            self.ids[item.key] = identity(item)
        if item.epoch > self.rules.clock.time() + self.rules.settings.MAX_AHEAD:
            return
        if self.newest is None or item.epoch > self.newest:
            self.newest = item.epoch
            if self.pruned_to is None or \
                    self.keep_from() - self.pruned_to >= self.rules.settings.SEAL_EVERY:
                self.prune()

    def put_aside(self, key, why):
        """KEY will not be read (it failed MAX_ATTEMPTS times, or landed too late): kept with
        WHY for `status`, the latest REMEMBERED_SET_ASIDE of them."""
        self.set_aside.pop(key, None)
        self.set_aside[key] = [why, utc_text(self.rules.clock.time())]
        for old in list(self.set_aside)[:-REMEMBERED_SET_ASIDE]:
            del self.set_aside[old]

    def finish_late(self, horizon):
        """A sweep (or, without sweeps, a re-listing) has listed up to the window: later
        re-listings start at HORIZON."""
        self.late_start = horizon
        self.prune()

    def prune(self):
        """Forgets the seconds no listing reaches any more. Compared as text, which sorts as
        time does (to within the hour a local clock repeats in autumn)."""
        keep_from = self.keep_from()
        first = self.rules.seconds.text(keep_from)
        for part in (self.late, self.read):
            for old in [old for old in part if old < first]:
                del part[old]
                self.late_changed |= part is self.late
        for old in [key for key in self.ids if _second_of(key) < first]:
            del self.ids[old]
        if self.floor is not None and self.floor < keep_from:
            self.floor = None
        self.pruned_to = keep_from

    def seal(self):
        """Moves the seconds behind SEALED to LATE, once SEALED moves on (it follows the
        window a SEAL_EVERY at a time), or once SEAL_EVERY of them wait (see the class)."""
        start, every = self.window_start(), self.rules.settings.SEAL_EVERY
        if start is None:
            return
        moved_on = self.sealed is None or start - self.sealed >= every
        if not moved_on and self.seconds_behind < every:
            return  # most saves: nothing to move, and no look through READ
        self.sealed, self.seconds_behind = start if moved_on else self.sealed, 0
        epoch = self.rules.seconds.epoch
        behind = [second for second in self.read if epoch(second) < self.sealed]
        for second in behind:
            self.late.setdefault(second, set()).update(self.read.pop(second))
        self.late_changed |= bool(behind)

    def to_json(self):
        def text(epoch):
            return None if epoch is None else self.rules.seconds.text(epoch)
        return {"newest": text(self.newest), "read": _read_to_json(self.read),
                "floor": text(self.floor), "late_start": text(self.late_start),
                "sealed": text(self.sealed), "attempts": self.attempts, "partial": self.partial,
                "swept_at": None if self.swept_at is None else utc_text(self.swept_at),
                "set_aside": self.set_aside, "ids": self.ids}

    def late_json(self):
        return _read_to_json(self.late)

    def add_late(self, seconds):
        """Takes up the seconds of the .late file."""
        for second, marks in _read_from_json(seconds, self.rules.seconds).items():
            self.late.setdefault(second, set()).update(marks)

    @classmethod
    def from_json(cls, rules, data):
        def epoch(name):
            text = data.get(name)
            if text is not None and not isinstance(text, str):
                raise ValueError("%s is %r, not a second such as 2026-11-28/10.00.00"
                                 % (name, text))
            return None if text is None else rules.seconds.epoch(text)
        return cls(rules, epoch("newest"), _read_from_json(data["read"], rules.seconds),
                   epoch("floor"), epoch("late_start"), epoch("sealed"),
                   _attempts_from_json(data["attempts"]), _partial_from_json(data["partial"]),
                   _utc_time(data.get("swept_at")), _set_aside_from_json(data.get("set_aside", {})),
                   _ids_from_json(data.get("ids", {})))


def _read_to_json(read):
    return {second: _marks_text(marks) for second, marks in read.items()}


def _mapping(data, what):
    if not isinstance(data, dict):
        raise ValueError("%s is %r, not an object" % (what, data))
    return data


def _utc_time(text, name="swept_at"):
    """The epoch of TEXT, a time utc_text wrote; None for None."""
    if text is None:
        return None
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        raise ValueError("%s is %r, not a time such as 2026-11-28T10:00:00Z"
                         % (name, text)) from None


def _read_from_json(data, seconds):
    read = {}
    for second, counters in _mapping(data, "read").items():
        seconds.epoch(second)
        read[second] = _marks(counters)
    return read


def _attempts_from_json(data):
    for key, attempt in _mapping(data, "attempts").items():
        if not (isinstance(attempt, list) and len(attempt) == 2 and isinstance(attempt[0], int)
                and isinstance(attempt[1], (int, float))):
            raise ValueError("attempts of %r are %r, not [count, time]" % (key, attempt))
    return dict(data)


def _set_aside_from_json(data):
    for key, entry in _mapping(data, "set_aside").items():
        if not (isinstance(entry, list) and len(entry) == 2 and
                all(isinstance(part, str) for part in entry)):
            raise ValueError("set_aside of %r is %r, not [why, when]" % (key, entry))
    return dict(data)


def _ids_from_json(data):
    for key, value in _mapping(data, "ids").items():
        if not isinstance(value, str):
            raise ValueError("ids of %r is %r, not an ETag and a time" % (key, value))
    return dict(data)


def identity(item):
    """What tells an object from another stored under the same key: its ETag and when S3
    stored it."""
    return "%s %d" % (item.etag, item.modified)


def _partial_from_json(data):
    for key, posted in _mapping(data, "partial").items():
        if not isinstance(posted, int) or isinstance(posted, bool) or posted < 0:
            raise ValueError("partial of %r is %r, not a count of events" % (key, posted))
    return dict(data)


# ---- The checkpoint -----------------------------------------------------------------------

class Checkpoint(object):
    """Where the reader is: a Position for each server and the keys off the scheme reported,
    kept in the file CHECKPOINT (and CHECKPOINT.late for the horizon's seconds), written
    atomically, and locked so that no second reader uses it."""

    def __init__(self, settings, seconds, clock, log, disk):
        self.settings, self.seconds, self.clock, self.log, self.disk = (
            settings, seconds, clock, log, disk)
        self.path = os.path.abspath(settings.CHECKPOINT)
        self.lock_path = self.path + ".lock"
        self.lock_fd = None  # held while this reader lives
        self.positions = {}
        self.other_keys = []
        self.started_at = int(clock.time())  # the first start's, once a checkpoint has it
        self.loaded = False
        self.unsaved = False  # it lags behind what was posted: no more is read until saved

    def position(self, server):
        """SERVER's Position; a new one starts at the beginning, or with START_AT=now at the
        reader's first start (a server first seen later is read from then)."""
        if server not in self.positions:
            floor = self.started_at if self.settings.START_AT == "now" else None
            self.positions[server] = Position(self, floor=floor)
        return self.positions[server]

    def first_sight_of_other_key(self, key):
        """Whether KEY was not reported before. The first REMEMBERED_OTHER_KEYS are kept (a
        bucket with more strays has the others reported again, counted: flush_reports)."""
        if key in self.other_keys:
            return False
        if len(self.other_keys) < REMEMBERED_OTHER_KEYS:
            self.other_keys.append(key)
        return True

    # -- the file --

    def load(self, keys_of_second, lock=True):
        """Takes up the file, once (KEYS_OF_SECOND lists a second's keys, for the old
        scripts' lastkey.log); a missing file means: start as START_AT says. LOCK=False (a
        check) reads it without taking it."""
        if lock and self.lock_fd is None:
            self._lock()
        text = self._read_text(self.path)
        if text is not None:
            self._take_up(text, self._read_text(self.path + ".late"), keys_of_second)
        self.loaded = True

    def _take_up(self, text, late, keys_of_second):
        try:
            try:
                if text.startswith("{"):
                    self._from_json(json.loads(text))
                    if late is not None:
                        self._add_late(json.loads(late))
                    return
                if text and "\n" not in text:
                    old = re.match(r"^b'(.*)'$", text)  # the old scripts sometimes wrote repr
                    self._from_last_key(old.group(1) if old else text, keys_of_second)
                    return
                raise ValueError("empty" if not text else "neither JSON nor one key")
            except (KeyError, TypeError, AttributeError) as exc:
                raise ValueError("malformed: %s %s" % (type(exc).__name__, exc)) from None
        except ValueError as exc:
            self.positions, self.other_keys = {}, []
            raise CheckpointError("checkpoint %s is broken (%s); fix it, or delete it (and "
                                  "%s.late) to read s3://%s/ from the beginning"
                                  % (self.path, exc, self.path, self.settings.BUCKET)) from None

    def _read_text(self, path):
        """PATH's text, or None if there is no such file."""
        try:
            with open_nofollow(path) as handle:
                return handle.read().decode("utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError("cannot read checkpoint %s: %s" % (path, exc)) from None

    def _from_json(self, data):
        if not isinstance(data, dict) or data.get("version") not in (1, 2, CHECKPOINT_VERSION):
            raise ValueError("not a checkpoint of version 1 to %d" % CHECKPOINT_VERSION)
        if data.get("bucket") != self.settings.BUCKET:
            raise CheckpointError(
                "checkpoint %s belongs to bucket %s, not %s: give each reader its own file "
                "with NXLOG_S3_CHECKPOINT" % (self.path, data.get("bucket"),
                                              self.settings.BUCKET))
        if data["version"] == 1:  # one server, the last second reached: read up to it
            match = SCHEME_KEY.match((data.get("group") or "") + "0")
            if match is None:
                raise ValueError("its group %r is not a second of the key scheme"
                                 % data.get("group"))
            self._read_up_to(match.group(1), match.group(2), set(data["done"]))
            return
        other_keys = data["other_keys"]
        if not isinstance(other_keys, list) or not all(isinstance(key, str)
                                                       for key in other_keys):
            raise ValueError("other_keys is not a list of keys")
        self.positions = {server: Position.from_json(self, _mapping(position, server))
                          for server, position in _mapping(data["servers"], "servers").items()}
        self.other_keys = list(other_keys)
        started_at = _utc_time(data.get("started_at"), "started_at")
        if started_at is not None:
            self.started_at = started_at

    def _add_late(self, data):
        """Takes up the .late file's seconds (see Position)."""
        if data.get("version") != CHECKPOINT_VERSION or data.get("bucket") != \
                self.settings.BUCKET:
            raise ValueError("its .late file is not of version %d for bucket %s"
                             % (CHECKPOINT_VERSION, self.settings.BUCKET))
        for server, seconds in _mapping(data["servers"], "servers").items():
            self.position(server).add_late(seconds)

    def _read_up_to(self, server, second, counters):
        """SERVER read up to SECOND (COUNTERS of that second): what an older checkpoint
        knows. Nothing before that second is read again, nor reported."""
        epoch = self.seconds.epoch(second)
        self.positions = {server: Position(self, newest=epoch, read={
            second: {counter << 5 for counter in counters}}, floor=epoch)}

    def _from_last_key(self, last_key, keys_of_second):
        """The old scripts' lastkey.log: they read keys in text order up to and including
        LAST_KEY."""
        match = SCHEME_KEY.match(last_key)
        if match is None:
            raise ValueError("%r is not a key of the scheme SERVER/YYYY-MM-DD/HH.MM.SS.N"
                             % last_key)
        server, second = match.group(1), match.group(2)
        if self.settings.SERVER != "*" and server not in self.settings.SERVER:
            raise ValueError("its key %r is not under %s/" % (
                last_key, "/, ".join(self.settings.SERVER)))
        counters = {int(SCHEME_KEY.match(key).group(3)) for key in keys_of_second(
            "%s/%s." % (server, second)) if key <= last_key and SCHEME_KEY.match(key)}
        self._read_up_to(server, second, counters | {int(match.group(3))})

    def in_use(self):
        """Whether another reader has the checkpoint now (its lock taken and let go; no lock
        file made where there is none)."""
        return lock_held(self.lock_path)

    def _lock(self):
        """Refuses a CHECKPOINT that another reader uses: each would overwrite the other's."""
        try:
            self.lock_fd = exclusive_lock(self.lock_path)
        except OSError as exc:  # a link planted there (ELOOP), say
            raise CheckpointError("cannot lock the checkpoint: %s" % exc) from None
        if self.lock_fd is None:
            raise CheckpointError("another reader uses the checkpoint %s: give each reader its "
                                  "own NXLOG_S3_CHECKPOINT" % self.path)

    def keep_lock(self):
        """Takes the lock again if its file went (its folder removed while the reader ran), so
        that no second reader can start on the same CHECKPOINT; the whole checkpoint is then
        written again at the next save. Raises CheckpointError while another reader holds
        it."""
        if self.lock_fd is not None:
            try:
                if os.path.samestat(os.stat(self.lock_path), os.fstat(self.lock_fd)):
                    return
            except FileNotFoundError:
                pass
            os.close(self.lock_fd)
            self.lock_fd = None
            self.log.limited("lock", self.log.warning, "the lock file of the checkpoint %s was "
                             "removed while this reader ran: it is taken again, and the "
                             "checkpoint written again" % self.path)
        os.makedirs(os.path.dirname(self.lock_path), mode=0o700, exist_ok=True)
        self._lock()
        for position in self.positions.values():
            position.late_changed = True

    def save(self):
        """Writes the checkpoint: first the horizon's seconds to CHECKPOINT.late if they
        changed, then the rest (a crash between the two loses nothing: the two are merged).
        If the disk refuses (full, read-only), reading pauses until it takes it, so that a
        crash meanwhile posts again one object at most."""
        self.unsaved = True
        try:
            for position in self.positions.values():
                position.seal()
            late = [position for position in self.positions.values() if position.late_changed]
            if late:
                self.disk.write_atomically(self.path + ".late", _compact(self._late_json()))
                for position in late:
                    position.late_changed = False
            self.disk.write_atomically(self.path, _compact(self._json()))
        except OSError as exc:
            raise CheckpointError("cannot write checkpoint %s: %s; reading pauses until it can "
                                  "be written (nothing is lost)" % (self.path, exc)) from None
        self.unsaved = False

    def _json(self):
        return {"version": CHECKPOINT_VERSION, "bucket": self.settings.BUCKET,
                "started_at": utc_text(self.started_at), "other_keys": self.other_keys,
                "servers": {server: position.to_json()
                            for server, position in sorted(self.positions.items())}}

    def _late_json(self):
        return {"version": CHECKPOINT_VERSION, "bucket": self.settings.BUCKET,
                "servers": {server: position.late_json()
                            for server, position in sorted(self.positions.items())}}

    def release(self):
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def _compact(data):
    return json.dumps(data, separators=(",", ":")).encode()


# ---- Listing ------------------------------------------------------------------------------

def _server_time(response, clock):
    """S3's clock when it answered (its Date header), or this host's if it gave none."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return clock.time()


def _counter_order(pair):
    match = SCHEME_KEY.match(pair[0])
    return int(match.group(3)) if match else -1


def _second_of(key):
    """The second KEY belongs to, for grouping a listing: a key off the scheme is its own."""
    match = SCHEME_KEY.match(key)
    return match.group(2) if match else key


class Listing(object):
    """Which keys to read next, for a server: the window of a poll, the re-listing of the
    horizon, the sweep of the whole prefix; keys that cannot be read are reported, once."""

    def __init__(self, settings, client, checkpoint, fetcher, clock, log):
        self.settings, self.client, self.checkpoint = settings, client, checkpoint
        self.fetcher, self.clock, self.log = fetcher, clock, log
        self.unreported = []  # (key, why) found not readable in this call, to be logged
        self.known_servers = None  # with SERVER=*: what the last listing of them found
        self.listing_servers = None  # the future of the listing of them under way

    def pages(self, prefix, start_after, delimiter=None, dates=None):
        """(key, size, when stored) of every object under PREFIX after START_AFTER, in S3's
        (text) order, or with DELIMITER the common prefixes (size None), a page at a time.
        S3's time at each page is appended to DATES, if given. The fetch threads ask S3 for
        each page, one ahead; while it has not come, WAITING comes every WAIT_STEP seconds,
        so that a slow S3 holds no read_data call past its time."""
        pages = iter(self._paginate(prefix, start_after, delimiter))
        coming = self.fetcher.submit(next, pages, None)
        while True:
            try:
                page = coming.result(WAIT_STEP)
            except concurrent.futures.TimeoutError:
                yield WAITING
                continue
            if page is None:
                return
            coming = self.fetcher.submit(next, pages, None)
            if dates is not None:
                dates.append(_server_time(page, self.clock))
            for item in page.get("CommonPrefixes", ()):
                yield item["Prefix"], None, None, None
            for item in page.get("Contents", ()):
                yield item["Key"], item["Size"], calendar.timegm(
                    item["LastModified"].utctimetuple()), item.get("ETag", "")

    def _paginate(self, prefix, start_after=None, delimiter=None):
        arguments = {"Bucket": self.settings.BUCKET, "Prefix": prefix,
                     "PaginationConfig": {"PageSize": self.settings.MAXKEYS}}
        if start_after:
            arguments["StartAfter"] = start_after
        if delimiter:
            arguments["Delimiter"] = delimiter
        return self.client.get_paginator("list_objects_v2").paginate(**arguments)

    def keys_of(self, prefix):
        return [entry[0] for entry in self.pages(prefix, None) if entry is not WAITING]

    def servers(self, deadline):
        """The servers to read: SERVER, or with * every first segment of a key, listed anew
        at every call by a fetch thread and waited for until DEADLINE; while S3 is slower,
        the servers the last listing found (None before the first)."""
        if self.settings.SERVER != "*":
            return self.settings.SERVER
        if self.listing_servers is None:
            self.listing_servers = self.fetcher.submit(self.first_segments)
        concurrent.futures.wait([self.listing_servers],
                                max(0.0, deadline - self.clock.monotonic()))
        if self.listing_servers.done():
            finished, self.listing_servers = self.listing_servers, None
            self.known_servers = self.server_names(finished.result())
        return self.known_servers

    def first_segments(self):
        """Every first segment of a key (with its '/'), and every key at the bucket's top
        (no '/'): a fetch thread lists them."""
        segments = []
        for page in self._paginate("", delimiter="/"):
            segments += [item["Prefix"] for item in page.get("CommonPrefixes", ())]
            segments += [item["Key"] for item in page.get("Contents", ())]
        return segments

    def server_names(self, prefixes, report=None):
        """The servers among first segments PREFIXES; the others reported (or given to
        REPORT(key, why)), MOVE_PREFIX apart."""
        names, report = [], report or self.report_other_key
        for prefix in prefixes:
            if not prefix.endswith("/"):
                report(prefix, "it lies at the top of the bucket, under no server")
            elif self.settings.MOVE_PREFIX != prefix:
                try:
                    names.append(_server(prefix[:-1]))
                except ValueError:
                    report(prefix, "its first segment is not a server name")
        return names

    def report_other_key(self, key, why):
        """Notes, the first time, that KEY is not read and why, to be logged at the end of
        the call (see flush_reports); True that time."""
        if not self.checkpoint.first_sight_of_other_key(key):
            return False
        self.unreported.append((key, why))
        return True

    def flush_reports(self):
        """Logs the keys found not readable in this call: REPORTED_BY_NAME of them one by
        one, the others in a line that counts them, so that a bucket full of strays costs
        a few lines a call."""
        bucket, unreported, self.unreported = self.settings.BUCKET, self.unreported, []
        for key, why in unreported[:REPORTED_BY_NAME]:
            self.log.warning("%s is not read: %s" % (quoted(bucket, key), why))
        if len(unreported) > REPORTED_BY_NAME:
            more = unreported[REPORTED_BY_NAME:]
            self.log.warning("%s more keys are not read, among them %s (%s): `%s audit` "
                             "lists them all" % (len(more), quoted(bucket, more[0][0]),
                                                 more[0][1], SCRIPT))

    def listed(self, server, start_after, dates=None, report=None):
        """The objects of SERVER after START_AFTER as Listed, in reading order: a second is
        sorted by counter once all of it was listed, even across two list pages (and while
        S3 is slow to send the next). Keys off the scheme, or with a date or time that cannot
        be, are reported once (or given to REPORT(key, why)) and passed. PAUSE comes after
        every MAXKEYS keys or so, and while S3 has not sent the next page."""
        group, second, listed = [], None, 0
        for entry in itertools.chain(self.pages(server + "/", start_after, dates=dates),
                                     [None]):
            if entry is WAITING:
                yield PAUSE  # the second being listed stays open until its end is seen
                continue
            this = None if entry is None else _second_of(entry[0])
            if group and this != second:
                listed += len(group)
                if listed >= self.settings.MAXKEYS:
                    listed = 0
                    yield PAUSE
                yield from self._scheme_items(sorted(group, key=_counter_order),
                                              report or self.report_other_key)
                group = []
            if entry is not None:
                group.append(entry)
                second = this

    def _scheme_items(self, group, report):
        """GROUP's (key, size, when stored, ETag) as Listed, sorted by counter (two objects
        of one counter, under two suffixes, are both read); keys that cannot be read
        REPORTed, among them a second key of the same counter and suffix (.01 beside .1)."""
        first_of_mark = {}
        for key, size, modified, etag in group:
            match = SCHEME_KEY.match(key)
            if match is None:
                report(key, "its key is not SERVER/YYYY-MM-DD/HH.MM.SS.N[.suffix]")
                continue
            mark = _mark(int(match.group(3)), match.group(4) or "")
            if mark in first_of_mark:  # .01 beside .1
                report(key, "its counter and suffix are those of %r, which is read: the "
                       "reader tells objects apart by them" % first_of_mark[mark])
                continue
            first_of_mark[mark] = key
            try:
                epoch = self.checkpoint.seconds.epoch(match.group(2))
            except ValueError:
                report(key, "its date or time cannot be (%s)" % match.group(2))
                continue
            yield Listed(key, match.group(2), int(match.group(3)), match.group(4) or "", epoch,
                         size, modified, etag)

    def window(self, server, position):
        """What a poll reads: the objects of SERVER not read yet, from LOOKBACK behind the
        newest one read on."""
        for item in self.listed(server, position.start_after(server, position.window_start())):
            if item is PAUSE or not position.done(item):
                yield item

    def late(self, server, position, sweep):
        """What the re-listing reads: the objects of SERVER not read yet between LATE_HORIZON
        and LOOKBACK behind the newest one read; those that fell behind the horizon since the
        last sweep are reported, once. A SWEEP lists the whole prefix: what S3 stored behind
        that since the last sweep landed too late for any listing to read it, and is
        reported. The horizon moves on at a sweep only (at every re-listing if there are
        none), so that nothing lands between what the sweeps and the re-listings look at."""
        horizon, end, keep_from = position.horizon(), position.window_start(), \
            position.keep_from()
        dates = []
        for item in self.listed(server, position.start_after(server, None if sweep
                                                             else keep_from), dates):
            if item is not PAUSE and item.epoch >= end:
                break
            if item is PAUSE or item.epoch >= horizon and not position.done(item):
                yield item
            elif item.epoch < keep_from:
                self._report_landed_behind(position, item)
            elif not position.done(item):
                why = "it landed more than LATE_HORIZON=%d s behind the newest object read" \
                    % self.settings.LATE_HORIZON
                self.log.warning("%s is not read: %s; read it by hand, or raise "
                                 "NXLOG_S3_LATE_HORIZON" % (
                                     quoted(self.settings.BUCKET, item.key), why))
                position.put_aside(item.key, why)
                position.mark(item)
        if sweep:
            position.swept_at = dates[0] if dates else self.clock.time()
        if sweep or not self.settings.SWEEP_INTERVAL:
            position.finish_late(horizon)

    def _report_landed_behind(self, position, item):
        """A sweep came across ITEM behind the horizon: if S3 stored it after the last sweep,
        no listing read it. (The first sweep cannot tell, and only notes the time.)"""
        if position.swept_at is not None and \
                item.modified >= position.swept_at - LANDING_MARGIN:
            why = "S3 stored it at %s, more than LATE_HORIZON=%d s behind the newest object " \
                "read" % (utc_text(item.modified), self.settings.LATE_HORIZON)
            if self.report_other_key(item.key, why + "; read it by hand"):
                position.put_aside(item.key, why)

    def sweep_due(self, position):
        every = self.settings.SWEEP_INTERVAL
        return every > 0 and (position.swept_at is None or
                              self.clock.time() >= position.swept_at + every)


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
_JSON_DECODER = json.JSONDecoder()


def _where(line):
    """Where in an object a problem is, for its message: in line number LINE, or the whole."""
    return "line %d" % line if line else "its body"


def _parsed_json(text):
    """json.loads(TEXT), a third faster for what a batch line is (JSON, then its newline);
    anything else goes through json.loads itself, which also words the errors."""
    try:
        value, end = _JSON_DECODER.raw_decode(text)
        if end == len(text) or text[end:] == "\n":
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
    except RecursionError:
        raise UndecodableObject("JSON nested too deep to parse in %s" % _where(line)) from None
    if not isinstance(fields, dict):  # JSON's names are always text
        raise UndecodableObject("%s does not hold an object of fields" % _where(line))
    return fields


@functools.lru_cache(maxsize=4096)
def _nxlog_time(zoned):
    """A zoned time (2026-11-28T11:28:18+09:00) as NXLog gives a datetime field to Python:
    the same instant in this host's local time, with no zone (2026-11-28 11:28:18 in Tokyo,
    2026-11-28 02:28:18 in London); ZONED itself if it is no such time."""
    epoch = instant(zoned)
    return zoned if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _nxlog_times(fields):
    """FIELDS, the datetime fields the writer stored with their zone as NXLog gives them."""
    for name, value in fields.items():
        if type(value) is str and len(value) == 25 and value[10] == "T" and \
                ZONED_TIME.match(value):
            fields[name] = _nxlog_time(value)
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


def _skip_newlines(stream):
    """Reads past the newlines that come next in STREAM (buffered), a buffer at a time: a
    bomb of empty lines costs no loop per line. How many there were."""
    skipped = 0
    while True:
        buffered = stream.peek(1)
        run = len(buffered) - len(buffered.lstrip(b"\n"))
        if not run:
            return skipped
        stream.read(run)
        skipped += run


class Decoder(object):
    """An object's events, as field dicts, by what its metadata says it holds (raw, JSON,
    pickle, JSON lines; gzip, zstd), streamed: memory stays bounded whatever its size."""

    def __init__(self, settings, log, nxlog_times=True):
        self.settings, self.log = settings, log
        self.nxlog_times = nxlog_times  # zoned times as NXLog gives them; False: as stored

    def events(self, key, response, budget=None):
        """KEY's events, decoded from RESPONSE within BUDGET (by default its own)."""
        budget = budget or DecodeBudget(self.settings, response.get("ContentLength", 0))
        metadata = response.get("Metadata", {})
        body_format = metadata.get(METADATA_FORMAT)
        if body_format == "parquet":
            return self._with_times(metadata, _parquet_events(
                response["Body"], budget, self.settings.MAX_EVENT_BYTES))
        stream = self._decompressing(response, metadata)
        if body_format == "jsonl" or (body_format is None and self.settings.RAW_LINES):
            events = self._line_events(key, stream, body_format, budget)
        else:
            events = iter([self._one_event(key, self._bounded_read(stream.read, budget),
                                           body_format)])
        return self._with_times(metadata, events)

    def _with_times(self, metadata, events):
        """EVENTS, their zoned times as NXLog gives datetime fields where they are wanted."""
        if self.nxlog_times and metadata.get(METADATA_TIMES) == "zoned":
            return map(_nxlog_times, events)
        return events

    @staticmethod
    def _decompressing(response, metadata):
        """The object's body as a stream, decompressed as it is read."""
        stream = io.BufferedReader(_RawBody(response["Body"]), 1 << 16)
        compression = metadata.get(METADATA_COMPRESSION)
        if compression is None:  # not ours: trust Content-Encoding, or the gzip signature
            gzipped = response.get("ContentEncoding") == "gzip" or \
                stream.peek(2)[:2] == GZIP_MAGIC
            compression = "gzip" if gzipped else "none"
        if compression == "none":
            return stream
        if compression == "gzip":
            return gzip.GzipFile(fileobj=stream, mode="rb")
        if compression == "zstd":
            if zstandard is None:
                raise UndecodableObject("it is zstd-compressed: install the zstandard package "
                                        "for the Python NXLog runs")
            return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(stream))
        raise UndecodableObject("unknown %s %r" % (METADATA_COMPRESSION, compression))

    def _text(self, body, key):
        try:
            return body.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            self.log.warning("%s is not valid UTF-8; its undecodable bytes are kept as \\x "
                             "escapes" % quoted(self.settings.BUCKET, key))
            return body.decode("utf-8", "backslashreplace")

    def _pickled_fields(self, body):
        if not self.settings.ALLOW_PICKLE:
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

    def _one_event(self, key, body, body_format):
        """The event of an object that holds one. No metadata: the old scripts' (a pickle
        when it starts like one, else raw text) or another tool's (raw text)."""
        if body_format is None:
            body_format = "pickle" if PICKLE_MAGIC.match(body) else "raw"
        if body_format == "raw":
            return {"raw_event": self._text(body, key)}
        if body_format == "json":
            return _json_fields(body)
        if body_format == "pickle":
            return self._pickled_fields(body)
        raise UndecodableObject("unknown %s %r (written by a newer s3_write.py?)"
                                % (METADATA_FORMAT, body_format))

    def _bounded_read(self, read, budget, line=None):
        """READ(limit) within MAX_EVENT_BYTES and BUDGET: an event that large (in line number
        LINE, or in the object) is taken for what it most likely is, a decompression bomb or
        not a log."""
        limit = self.settings.MAX_EVENT_BYTES
        data = read(limit + 1 if limit else -1)
        if limit and len(data) > limit and not (len(data) == limit + 1 and
                                                 data.endswith(b"\n")):
            raise UndecodableObject(_too_large(_where(line), limit))
        budget.take(len(data))
        return data

    def _line_events(self, key, stream, body_format, budget):
        """The events of an object that holds one per line: a batch (JSON lines) or, with
        RAW_LINES, a text object without metadata."""
        if not isinstance(stream, io.BufferedReader):  # GzipFile: its readline is Python
            stream = io.BufferedReader(stream, 1 << 16)  # code, a buffer over it reads in C
        number = 0
        while True:
            number += 1
            line = self._bounded_read(stream.readline, budget, number)
            if not line:
                return
            if body_format != "jsonl":
                yield {"raw_event": self._text(line.rstrip(b"\n").rstrip(b"\r"), key)}
            elif line != b"\n":
                yield _json_fields(line, number)  # with its newline: no copy of a long line
            else:
                skipped = _skip_newlines(stream)
                budget.take(skipped)
                number += skipped


def _too_large(where, limit):
    return "%s is larger than MAX_EVENT_BYTES=%d once decompressed (a decompression bomb?); " \
        "raise NXLOG_S3_MAX_EVENT_BYTES, or set it to 0 for no limit" % (where, limit)


def _parquet_column(arrow, name, column):
    """A Parquet column's values as fields take them: timestamps zoned as JSON lines hold
    them (made by Arrow, in C++), binary as base64 text (NXLog takes no binary field from
    Python), types no writer of ours makes as Arrow's text of them (dates, decimals) or their
    JSON (lists, structs)."""
    types = arrow.types
    if types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if types.is_timestamp(column.type):  # UTC's seconds, no zone to look up
        seconds = arrow.compute.cast(column, arrow.timestamp("s"), safe=False)
        return arrow.compute.strftime(seconds, format="%Y-%m-%dT%H:%M:%S+00:00").to_pylist()
    if types.is_binary(column.type) or types.is_large_binary(column.type):
        return [None if value is None else json_value(value) for value in column.to_pylist()]
    if any(kind(column.type) for kind in (types.is_string, types.is_large_string,
                                          types.is_integer, types.is_boolean,
                                          types.is_floating, types.is_null)):
        return column.to_pylist()
    if types.is_nested(column.type):  # lists, structs, maps: their JSON
        return [None if value is None else json.dumps(value, default=str)
                for value in column.to_pylist()]
    try:
        return arrow.compute.cast(column, arrow.string()).to_pylist()
    except (arrow.ArrowException, ValueError):
        raise UndecodableObject("its column %r is of type %s, which no NXLog field can hold"
                                % (name, column.type)) from None


def _parquet_row_sizes(arrow, batch):
    """The bytes of each row of BATCH once its text and binary are decoded (dictionaries
    expanded), without expanding them; other values count 8 bytes."""
    compute, types = arrow.compute, arrow.types
    sizes = arrow.array([0] * batch.num_rows, arrow.int64())
    for column in batch.columns:
        kind = column.type.value_type if types.is_dictionary(column.type) else column.type
        if any(test(kind) for test in (types.is_string, types.is_large_string, types.is_binary,
                                       types.is_large_binary)):
            if types.is_dictionary(column.type):
                lengths = compute.take(compute.binary_length(column.dictionary), column.indices)
            else:
                lengths = compute.binary_length(column)
            lengths = compute.fill_null(compute.cast(lengths, arrow.int64()), 0)
        else:
            lengths = arrow.array([8] * batch.num_rows, arrow.int64())
        sizes = compute.add(sizes, lengths)
    return sizes.to_pylist()


def _pieces(sizes):
    """(start, length, bytes) of the runs of rows of SIZES that make CHUNK_BYTES or less
    (a row more than that on its own)."""
    start, total = 0, 0
    for row, size in enumerate(sizes):
        if total and total + size > CHUNK_BYTES:
            yield start, row - start, total
            start, total = row, 0
        total += size
    if start < len(sizes):
        yield start, len(sizes) - start, total


def _arrow_source(arrow, body, keep):
    """BODY (an object fetched whole, or streaming) as a file of Arrow's own, which Parquet
    can seek in: its bytes, or a large one copied to a temporary file first (KEEP holds it),
    so that memory stays bounded. Never a Python file: Arrow would call it from threads of
    its own, which under NXLog's sub-interpreters can hang the call for good."""
    if isinstance(body, io.BytesIO):
        return arrow.BufferReader(body.getvalue())
    copy = tempfile.NamedTemporaryFile(prefix=".%s-parquet-" % SCRIPT)
    keep.append(copy)
    for chunk in iter(lambda: body.read(1 << 20), b""):
        copy.write(chunk)
    copy.flush()
    return arrow.memory_map(copy.name)


def _parquet_events(body, budget, max_event_bytes):
    """The rows of a Parquet batch as events, CHUNK_BYTES of them at a time at most; a null
    is a field the event did not have. Text is read as dictionaries where the file has them,
    and each row's decoded size is known before it is decoded: a small file whose
    dictionary makes gigabytes (a bomb) is refused within BUDGET and MAX_EVENT_BYTES."""
    arrow = parquet_library()
    if arrow is None:
        raise UndecodableObject("it is Parquet: install the pyarrow package for the Python "
                                "NXLog runs")
    copies = []
    try:
        source = _arrow_source(arrow, body, copies)
        metadata = arrow.parquet.ParquetFile(source).metadata
        _check_parquet_size(metadata, budget)
        source.seek(0)
        schema = metadata.schema.to_arrow_schema()
        more = (schema.metadata or {}).get(MORE_FIELDS.encode())
        more = more and more.decode("utf-8", "replace")
        texts = [field.name for field in schema if arrow.types.is_string(field.type) or
                 arrow.types.is_binary(field.type)]
        parquet = arrow.parquet.ParquetFile(source, metadata=metadata, read_dictionary=texts)
        for batch in parquet.iter_batches(batch_size=1024):
            sizes = _parquet_row_sizes(arrow, batch)
            if max_event_bytes and max(sizes, default=0) > max_event_bytes:
                raise UndecodableObject(_too_large("a row", max_event_bytes))
            for start, length, size in _pieces(sizes):
                budget.take(size)
                piece, names = batch.slice(start, length), batch.schema.names
                columns = [_parquet_column(arrow, name, column)
                           for name, column in zip(names, piece.columns)]
                for values in zip(*columns):
                    event = {name: value for name, value in zip(names, values)
                             if value is not None}
                    if more in event:  # the fields beyond the writer's PARQUET_COLUMNS
                        event.update(_json_fields(event.pop(more).encode(
                            "utf-8", "surrogatepass")))
                    yield event
    except (arrow.ArrowException, OSError) as exc:
        raise UndecodableObject("not a Parquet file it can read: %s" % exc) from None
    finally:
        for copy in copies:
            copy.close()


MORE_FIELDS = "nxlog-s3-more-fields"  # Parquet schema metadata: the column holding, as a
                                     # JSON object, the fields beyond the writer's columns


def _check_parquet_size(metadata, budget):
    """Refuses a file whose pages, uncompressed, are larger than BUDGET allows, before any
    is read."""
    size = sum(group.column(index).total_uncompressed_size
               for group in map(metadata.row_group, range(metadata.num_row_groups))
               for index in range(group.num_columns))
    if budget.beyond(size):
        raise budget.refused()


# ---- Fetching -----------------------------------------------------------------------------

class Fetcher(object):
    """GETs objects in FETCH_THREADS threads started at the first use: small ones (up to
    WHOLE_OBJECT) whole and ahead, larger ones when their turn comes, as a response whose
    body streams. The threads also fetch the listings' pages and do AFTER_READ's work."""

    whole_object = WHOLE_OBJECT

    def __init__(self, settings, client):
        self.settings, self.client = settings, client
        self.pool = None

    def ahead(self, item):
        """A future of ITEM's object read whole; None for a large one, whose GET waits for
        its turn (see get): its connection would sit idle meanwhile."""
        return self.submit(self.whole, item.key) if item.size <= self.whole_object else None

    def get(self, item):
        """A future of ITEM's GET, a large one's response whose body streams as it is read."""
        return self.submit(self.stream, item.key)

    def submit(self, function, *arguments):
        """FUNCTION(*ARGUMENTS) in a fetch thread: a future of what it returns."""
        if self.pool is None:
            self.pool = concurrent.futures.ThreadPoolExecutor(self.settings.FETCH_THREADS,
                                                              thread_name_prefix=SCRIPT)
        return self.pool.submit(function, *arguments)

    def whole(self, key):
        response = self.stream(key)
        response["Body"] = io.BytesIO(response["Body"].read())
        return response

    def stream(self, key):
        return self.client.get_object(Bucket=self.settings.BUCKET, Key=key)

    def stop(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


class Round(object):
    """One pass over a server's new objects (ITEMS, Listed in reading order, and PAUSE now
    and then), which may take several calls: the listing goes on where the last call
    stopped, and the small objects fetched ahead (FETCH_THREADS of them) wait for their
    turn. LATE tells a re-listing of the horizon from a poll's pass over the window."""

    def __init__(self, items, fetcher, late=False):
        self.items, self.fetcher, self.late = items, fetcher, late
        self.over = False  # the listing came to its end
        self.ahead = collections.deque()  # (item, future, or None for a large object)

    def next(self, deadline, clock):
        """The next (item, future) in key order; PAUSE if the listing is still going after
        DEADLINE with nothing to read yet; None once the pass is over."""
        while not self.over and len(self.ahead) <= self.fetcher.settings.FETCH_THREADS:
            item = next(self.items, None)
            if item is None:
                self.over = True
            elif item is PAUSE:
                if self.ahead or clock.monotonic() > deadline:
                    break  # objects to read now, or the call's time is up
            else:
                self.ahead.append((item, self.fetcher.ahead(item)))
        if self.ahead:
            return self.ahead.popleft()
        return None if self.over else PAUSE

    def again(self, entry):
        """ENTRY's object is not done yet: it comes first in the next call."""
        self.ahead.appendleft(entry)


class OpenObject(object):
    """The object whose events are being posted, which a call may stop inside (the next
    call goes on there): its key, its events still to come (DECODED() gives them), and the
    response they come from. Fetched whole, it is decoded as its events are posted: that
    takes no wait, and each step of it is bounded (an event by MAX_EVENT_BYTES, the whole
    by BUDGET, a run of empty lines skipped at once)."""

    def __init__(self, key, response, decoded, budget):
        self.key, self.response, self.budget = key, response, budget
        self.events = decoded()
        self.deadline = None  # when the call posting its events must end
        self.warned = False  # whether a warning named what NXLog could not take in it

    def close(self):
        self.budget.stop()
        self.response["Body"].close()


class _Failed(object):
    """What stopped a StreamedObject's decoding: raised again where read_data reaches it."""

    def __init__(self, exc):
        self.exc = exc


_END = object()
NOT_YET = object()  # what a StreamedObject's events give when none came by the deadline


class StreamedObject(OpenObject):
    """An object too large to fetch whole: a thread of its own decodes it as its body
    streams, STREAMED_AHEAD chunks ahead of read_data at most (a chunk: STREAMED_CHUNK
    events, or fewer decoded from CHUNK_BYTES as BUDGET counts them), so that a slow S3
    holds that thread, not NXLog, and memory stays bounded. Its events give NOT_YET when
    none came by the call's deadline; an error comes where it happened, after the events
    before it."""

    def __init__(self, key, response, decoded, budget, clock):
        OpenObject.__init__(self, key, response, lambda: self._ready(clock), budget)
        self.queue = queue.Queue(STREAMED_AHEAD)
        self.stopped = threading.Event()
        threading.Thread(target=self._decode, args=(decoded,), daemon=True,
                         name="%s decoder" % SCRIPT).start()

    def _decode(self, decoded):
        chunk, chunk_end = [], CHUNK_BYTES
        try:
            for fields in decoded():
                chunk.append(fields)
                if len(chunk) == STREAMED_CHUNK or self.budget.decoded >= chunk_end:
                    if not self._put(chunk):
                        return
                    chunk, chunk_end = [], self.budget.decoded + CHUNK_BYTES
            if self._put(chunk):
                self._put(_END)
        except BaseException as exc:  # handed over after the events before it, to be
            if self._put(chunk):        # raised in read_data
                self._put(_Failed(exc))

    def _put(self, value):
        """Hands VALUE over once there is room; False if the object was closed meanwhile."""
        while not self.stopped.is_set():
            try:
                self.queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _ready(self, clock):
        while True:
            try:
                value = self.queue.get(timeout=max(0.0, self.deadline - clock.monotonic()))
            except queue.Empty:
                yield NOT_YET
                continue
            if value is _END:
                return
            if isinstance(value, _Failed):
                raise value.exc
            yield from value

    def close(self):
        self.stopped.set()
        OpenObject.close(self)


# ---- Reading ------------------------------------------------------------------------------

def _event_maker(module):
    return getattr(module, "logdata_new", None) or module.new_logdata  # current, else legacy


def _schedule(module, delay):
    set_timer = getattr(module, "set_read_timer", None) or module.add_read_event
    set_timer(delay)


# What NXLog's set_field cannot take (../shared/nxlog-python-api.md): a NUL or a lone
# surrogate in a field name kills NXLog, a NUL in a value cuts it short, an integer beyond 64
# bits raises, text of more than NXLOG_MAX_TEXT bytes (UTF-8) makes NXLog give up the call,
# and the input with it, for good. The reader escapes such text visibly (\u0000), posts such
# integers as text, and cuts text at NXLog's limit.
NXLOG_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")
INT64_LIMIT = 2 ** 63
NXLOG_MAX_TEXT = 1048576


def _unsafe_text(text):
    return not (text.isascii() and "\x00" not in text) and \
        NXLOG_UNSAFE_TEXT.search(text) is not None


def _escaped(text):
    return NXLOG_UNSAFE_TEXT.sub(lambda match: "\\u%04x" % ord(match.group()), text)


def _within_nxlog_limit(text):
    """TEXT, or as much of it as NXLog takes (whole characters)."""
    if len(text) <= NXLOG_MAX_TEXT // 4:
        return text
    encoded = text.encode("utf-8")
    if len(encoded) <= NXLOG_MAX_TEXT:
        return text
    return encoded[:NXLOG_MAX_TEXT].decode("utf-8", "ignore")


def _text_needs_care(text):
    """Whether NXLog cannot take TEXT as it is (a long text that fits is not changed)."""
    return _unsafe_text(text) or _within_nxlog_limit(text) is not text


def _text_nxlog_takes(text):
    """TEXT as NXLog takes it, and whether some of it had to be cut."""
    escaped = _escaped(text) if _unsafe_text(text) else text
    taken = _within_nxlog_limit(escaped)
    return taken, taken is not escaped


class FieldGuard(object):
    """Makes an event's fields what NXLog's set_field takes: a name it cannot take gets its
    NUL and lone surrogates escaped (and ~2, ~3... if another field has that name already),
    a value its NULs and lone surrogates escaped, an integer beyond 64 bits its decimal
    text, text beyond NXLOG_MAX_TEXT bytes (no writer of ours stores such) cut there."""

    def __init__(self):
        self.safe_names = set()  # the names seen that NXLog takes as they are

    def guarded(self, fields):
        """FIELDS, or a copy NXLog takes; the names of the fields changed (None if none
        was), and whether text was cut. Every event passes here: the common case (a name
        seen before, short ASCII text, a small integer) takes no call."""
        changed, safe_names = None, self.safe_names
        for name, value in fields.items():
            if name not in safe_names:
                if _text_needs_care(name):
                    changed = (changed or []) + [name]
                    continue
                safe_names.add(name)
            kind = type(value)
            if kind is str:
                if value.isascii() and "\x00" not in value and len(value) <= NXLOG_MAX_TEXT:
                    continue
                if not _text_needs_care(value):
                    continue
            elif kind is not int or -INT64_LIMIT <= value < INT64_LIMIT:
                continue
            changed = (changed or []) + [name]
        if changed is None:
            return fields, None, False
        safe, cut = self._made_safe(fields)
        return safe, changed, cut

    @staticmethod
    def _made_safe(fields):
        safe, cut = {}, False
        for name, value in fields.items():
            if _text_needs_care(name):
                name, name_cut = _text_nxlog_takes(name)
                base, cut = name, cut or name_cut
                for number in itertools.count(2):
                    if name not in fields and name not in safe:
                        break
                    name = "%s~%d" % (base, number)
            if type(value) is str:
                value, value_cut = _text_nxlog_takes(value)
                cut |= value_cut
            elif type(value) is int and not -INT64_LIMIT <= value < INT64_LIMIT:
                value = str(value)
            safe[name] = value
        return safe, cut


def _failure(exc):
    """What went wrong with an object, for the log and `status`."""
    if isinstance(exc, ClientError) and error_code(exc) in ("404", "NoSuchKey"):
        return "S3 listed it, then answered 404 Not Found (deleted meanwhile, by a lifecycle " \
            "rule, a person or another reader?)"
    if isinstance(exc, (BotoCoreError, ClientError)):  # some are OSErrors too
        return "S3 or the network failed: %s" % exc
    if isinstance(exc, UndecodableObject):
        return str(exc)
    if isinstance(exc, DECODE_ERRORS):
        return "cannot decompress it: %s" % exc
    return "%s%s" % (type(exc).__name__, ": %s" % exc if str(exc) else "")


def _problem(exc):
    """What kind of lasting trouble EXC is, so that it is logged once a minute, not per poll."""
    return error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__


class Reader(object):
    """One im_python instance: each read_data call posts the events of the next objects, in
    key order, within a budget of objects and time, and saves the checkpoint after each.
    Built from SETTINGS; CLIENT, CLOCK and DISK are passed in by tests, by default a client
    from the standard AWS chain, the system's clock and the real file system."""

    clock_every = CLOCK_EVERY
    more_waiting_delay = MORE_WAITING_DELAY

    def __init__(self, settings, client=None, clock=None, disk=None):
        self.settings = settings
        self.clock = clock or Clock()
        self.log = Log(self.clock)
        self.client = client or new_client(settings, settings.FETCH_THREADS + 1)
        self.checkpoint = Checkpoint(settings, Seconds(settings.KEY_TIME), self.clock,
                                     self.log, disk or Disk())
        self.fetcher = Fetcher(settings, self.client)
        self.listing = Listing(settings, self.client, self.checkpoint, self.fetcher, self.clock,
                               self.log)
        self.decoder = Decoder(settings, self.log)
        self.field_guard = FieldGuard()
        self.kept = set()  # keys whose events NXLog could not take whole: never removed
        self.served_at = 0  # when (clock.time) an object was last read whole
        self.rounds = {}  # server -> its Round under way
        self.late_due = {}  # server -> when (monotonic) its next re-listing is due
        self.turn = 0  # the server the next call starts with: a busy one starves no other
        self.open = None  # the OpenObject a call stopped in
        self.after_reads = []  # futures of AFTER_READ's work not seen done yet
        self.read = {}  # server -> [objects, events, bytes] read since the start
        self.caught_up = {}  # server -> whether its last turn found nothing more to read
        self.errors = collections.Counter()  # read_data calls that failed, by kind
        self.metrics = Metrics(settings.METRICS_FILE, self.samples, self.clock,
                               self.checkpoint.disk, self.log)

    def start(self, probe=None):
        """What NXLog's start of the module does: checks the checkpoint's folder and the
        bucket (with PROBE, a client of one quick attempt by default). Raises ConfigError for
        what can never work."""
        self.metrics.check()
        private_directory(os.path.dirname(self.checkpoint.path), "CHECKPOINT", self.log)
        check_bucket(self.settings, probe or probe_client(self.settings), self.log)
        self.metrics.start()
        self.log.info(self.describe())
        return self

    def check(self, probe=None):
        """What start() checks, and whether the checkpoint can be taken up (a broken one is
        logged as an error, as the first read_data would), changing nothing (a missing
        folder is not made): what NXLog would log at start, and whether another reader uses
        the checkpoint now."""
        self.metrics.check()
        private_directory(os.path.dirname(self.checkpoint.path), "CHECKPOINT", self.log,
                          make=False)
        check_bucket(self.settings, probe or probe_client(self.settings), self.log)
        try:
            self.checkpoint.load(self.listing.keys_of, lock=False)
        except (CheckpointError, BotoCoreError, ClientError) as exc:
            self.log.error(str(exc))
        finally:
            self.fetcher.stop()
        in_use = self.checkpoint.in_use()
        return self.describe() + ("; a running reader uses the checkpoint now" if in_use
                                  else "")

    def describe(self):
        settings = self.settings
        return "reading s3://%s/ for %s, checkpoint %s" % (
            settings.BUCKET, "every server" if settings.SERVER == "*" else
            ", ".join(settings.SERVER), self.checkpoint.path)

    def read_data(self, module):
        """NXLog's read_data: schedules exactly one next call, whatever happens in this one."""
        delay = self.settings.POLL_INTERVAL
        every = "trying again every %s s" % delay
        try:
            if self.read_objects(module):
                delay = self.more_waiting_delay
        except CheckpointError as exc:
            self.start_over()
            self.errors["checkpoint"] += 1
            self.log.limited("checkpoint", self.log.error, "%s (%s)" % (exc, every))
        except (BotoCoreError, ClientError) as exc:
            self.start_over()
            self.errors[_problem(exc)] += 1
            reason = NO_CREDENTIALS if isinstance(exc, NoCredentialsError) else exc
            self.log.limited(_problem(exc), self.log.error, "cannot read s3://%s/ now: %s; %s"
                             % (self.settings.BUCKET, reason, every))
        except Exception:
            self.start_over()
            self.errors["unexpected"] += 1
            self.log.limited("unexpected", self.log.error, "unexpected error, %s: %s"
                             % (every, traceback.format_exc()))
        finally:
            _schedule(module, delay)

    def read_objects(self, module):
        """Posts the events of up to MAX_OBJECTS_PER_CALL new objects, for up to
        MAX_SECONDS_PER_CALL; True if it stopped before every server had caught up."""
        checkpoint = self.checkpoint
        if not checkpoint.loaded:
            checkpoint.load(self.listing.keys_of)
        checkpoint.keep_lock()
        if checkpoint.unsaved:
            checkpoint.save()
        deadline = self.clock.monotonic() + self.settings.MAX_SECONDS_PER_CALL
        servers = self.listing.servers(deadline)
        if servers is None:
            return True  # S3 has not listed them yet: the next call looks again
        budget = self.settings.MAX_OBJECTS_PER_CALL
        try:
            for index in range(len(servers)):
                server = servers[(self.turn + index) % len(servers)]
                budget, caught_up = self._read_server(module, server, budget, deadline)
                self.caught_up[server] = caught_up
                if not caught_up:
                    self.turn = (self.turn + index + 1) % len(servers)
                    return True
            return False
        finally:
            self._wait_for_after_reads(deadline)
            self.listing.flush_reports()

    def _read_server(self, module, server, budget, deadline):
        """Posts the events of up to BUDGET new objects of SERVER, until DEADLINE. Returns
        what is left of the budget, and whether SERVER has caught up."""
        position = self.checkpoint.position(server)
        read = self.read.setdefault(server, [0, 0, 0])
        while budget and self.clock.monotonic() <= deadline:
            entry = self._next_entry(server, position, deadline)
            if entry is None:
                return budget, True
            if entry is PAUSE:
                return 0, False
            item, future = entry
            if future is None:  # a large object, its turn come
                entry = item, self.fetcher.get(item)
                item, future = entry
            if not self._arrived(future, deadline):
                self.rounds[server].again(entry)
                return 0, False  # NXLog has its turn; the next call waits on for it
            budget -= 1
            try:
                if not self._read_object(module, position, item.key, future, deadline, read):
                    self.rounds[server].again(entry)
                    self.checkpoint.save()
                    return 0, False
                read[0] += 1
                read[2] += item.size
                self.served_at = self.clock.time()
            except Exception as exc:  # whatever an object makes happen is that object's alone
                if not self._give_up_now(position, item.key, exc):
                    self.checkpoint.save()
                    continue
                self._done_with(position, item, read=False)
                continue
            self._done_with(position, item)
        return budget, False

    def _arrived(self, future, deadline):
        """Whether the object FUTURE fetches is here, waiting for it until DEADLINE at most:
        a slow S3 holds no call longer than its time."""
        concurrent.futures.wait([future], max(0.0, deadline - self.clock.monotonic()))
        return future.done()

    def _next_entry(self, server, position, deadline):
        """The next object of SERVER to read, and its fetch: from the round under way, else
        from a new pass over the window; once that is over, from a re-listing of the horizon
        if one is due. None once SERVER has caught up; PAUSE if a long listing goes on at the
        next call."""
        while True:
            if server not in self.rounds:
                self.rounds[server] = self._round(position,
                                                  self.listing.window(server, position))
            entry = self.rounds[server].next(deadline, self.clock)
            if entry is not None:
                return entry
            finished = self.rounds.pop(server)
            if finished.late:
                self.late_due[server] = self.clock.monotonic() + self.settings.LATE_INTERVAL
                self.checkpoint.save()  # where the re-listing began, for the next one
                return None
            if position.newest is None or \
                    self.late_due.get(server, 0) > self.clock.monotonic():
                return None
            self.rounds[server] = self._round(position, self.listing.late(
                server, position, self.listing.sweep_due(position)), late=True)

    def _round(self, position, items, late=False):
        return Round((item for item in items
                      if item is PAUSE or not self._tried_lately(position, item.key)),
                     self.fetcher, late)

    def _read_object(self, module, position, key, future, deadline, read):
        """Posts the events of KEY (counted in READ[1]); False if the call's time ran out
        inside it, where the next call goes on. Raises what stopped it (UndecodableObject,
        botocore's errors, anything an object can make happen). How many of its events are
        posted is kept in the checkpoint, so that neither the next call, nor a retry after
        an error partway, nor a restarted reader posts one twice."""
        posted = already = position.partial.get(key, 0)
        new_event = _event_maker(module)
        every = self.clock_every
        guard = self.field_guard.guarded
        try:
            for fields in self._events_to_post(position, key, future, deadline):
                if fields is NOT_YET:
                    return False  # S3 is slow to send the rest: the next call goes on
                fields, changed, cut = guard(fields)
                if changed and (not self.open.warned or cut and key not in self.kept):
                    self.open.warned = True
                    self._warn_changed(key, changed, cut)
                    if cut:
                        self.kept.add(key)
                event = new_event()
                for name, value in fields.items():
                    event.set_field(name, value)
                event.post()
                posted += 1
                if posted % every == 0 and self.clock.monotonic() > deadline:
                    return False
        except (BotoCoreError, ClientError):  # S3 or the network (some are OSErrors too)
            self._close_open()
            raise
        except DECODE_ERRORS as exc:
            self._close_open()
            raise UndecodableObject("cannot decompress it: %s" % exc) from None
        except BaseException:
            self._close_open()
            raise
        finally:
            if posted > already:
                position.partial[key] = posted
                read[1] += posted - already
        self._close_open()
        return True

    def _warn_changed(self, key, names, cut):
        self.log.warning("%s holds what NXLog cannot take as it is, in the field%s %s (a NUL "
                         "or a lone surrogate, escaped as \\u0000; an integer beyond 64 bits, "
                         "posted as text%s): its events are posted with those made safe%s"
                         % (quoted(self.settings.BUCKET, key), "" if len(names) == 1 else "s",
                            ", ".join(repr(name[:100]) for name in names),
                            "; text beyond NXLog's %d bytes a field, cut there" % NXLOG_MAX_TEXT
                            if cut else "", ", and the object stays in the bucket whatever "
                            "AFTER_READ says" if cut else ""))

    def _events_to_post(self, position, key, future, deadline):
        """The events of KEY not posted yet, until DEADLINE: where the last call stopped in
        it, or from its GET past the events a crashed run had posted already."""
        if self.open is None or self.open.key != key:
            self._close_open()
            self.open = self._opened(key, future.result(), position.partial.get(key, 0))
        self.open.deadline = deadline
        return self.open.events

    def _opened(self, key, response, posted):
        """KEY's object, its first POSTED events passed over."""
        budget = DecodeBudget(self.settings, response.get("ContentLength", 0))

        def decoded():
            return itertools.islice(self.decoder.events(key, response, budget), posted,
                                    None)
        if isinstance(response["Body"], io.BytesIO):  # fetched whole
            return OpenObject(key, response, decoded, budget)
        return StreamedObject(key, response, decoded, budget, self.clock)

    def _close_open(self):
        if self.open is not None:
            self.open.close()
            self.open = None

    def _give_up_now(self, position, key, exc):
        """Counts a failed read of KEY (EXC, raised while it was fetched, decoded or posted);
        True once it has failed MAX_ATTEMPTS times and is set aside (reported, marked as read,
        left in the bucket). A failure of S3 or of the network counts only when S3 served
        another object since KEY's last try: an S3 that fails every GET sets nothing aside,
        an object that S3 alone cannot serve is."""
        attempts = self.settings.MAX_ATTEMPTS
        where, reason = quoted(self.settings.BUCKET, key), _failure(exc)
        number, last = position.attempts.pop(key, [0, None])
        if isinstance(exc, (BotoCoreError, ClientError)) and \
                (last is None or self.served_at <= last):
            position.attempts[key] = [number, self.clock.time()]
            self.log.limited("get", self.log.error, "cannot read %s now: %s; it is tried again "
                             "at a later poll (a failed attempt counts once S3 serves other "
                             "objects)" % (where, reason))
            return False
        number += 1
        if number >= attempts:
            position.put_aside(key, "%d failed attempts: %s" % (number, reason))
            self.log.error("set aside %s after %d failed attempts: %s; it stays in the bucket, "
                           "the objects after it are read" % (where, number, reason))
            return True
        position.attempts[key] = [number, self.clock.time()]
        self.log.warning("cannot read %s (attempt %d of %d): %s; it is tried again at a later "
                         "poll" % (where, number, attempts, reason))
        return False

    def _tried_lately(self, position, key):
        """Whether KEY failed less than POLL_INTERVAL ago: attempts are a poll apart (and a
        clock set back does not hold them off)."""
        attempt = position.attempts.get(key)
        return attempt is not None and \
            0 <= self.clock.time() - attempt[1] < self.settings.POLL_INTERVAL

    def _done_with(self, position, item, read=True):
        """ITEM was READ, or set aside: recorded in the checkpoint; once read, kept, moved or
        deleted as AFTER_READ says (an object set aside, or one whose text NXLog could not
        take whole, stays where it is, for a person)."""
        position.attempts.pop(item.key, None)
        position.partial.pop(item.key, None)
        position.mark(item)
        self.checkpoint.save()
        ahead = item.epoch - self.clock.time()
        if ahead > self.settings.MAX_AHEAD:
            self.log.limited("ahead", self.log.warning, "%s is dated %d s ahead of this host's "
                             "clock (more than MAX_AHEAD=%d): it was read, but the reader takes "
                             "the newest object to be the one before it" % (
                                 quoted(self.settings.BUCKET, item.key), ahead,
                                 self.settings.MAX_AHEAD))
        if read and self.settings.AFTER_READ != "keep" and item.key not in self.kept:
            self.after_reads.append(self.fetcher.submit(self._after_read, item.key))
        self.kept.discard(item.key)

    def _wait_for_after_reads(self, deadline):
        """AFTER_READ's deletes and moves run in the fetch threads: waited for until the
        call's DEADLINE, and again at the next call for those not done by then."""
        if self.after_reads:
            concurrent.futures.wait(self.after_reads,
                                    max(0.0, deadline - self.clock.monotonic()))
            self.after_reads = [done for done in self.after_reads if not done.done()]

    def _after_read(self, key):
        settings = self.settings
        try:
            if settings.AFTER_READ == "move":
                self.client.copy({"Bucket": settings.BUCKET, "Key": key}, settings.BUCKET,
                                 settings.MOVE_PREFIX + key)
            self.client.delete_object(Bucket=settings.BUCKET, Key=key)
        except (BotoCoreError, ClientError) as exc:
            self.log.warning("read %s, but could not %s it: %s; it stays where it is"
                             % (quoted(settings.BUCKET, key), settings.AFTER_READ, exc))

    def start_over(self):
        """After an error: the next call lists again from the checkpoint."""
        self.rounds.clear()
        self._close_open()

    def stop(self):
        """Ends this instance as the end of its process would: the checkpoint is let go.
        NXLog never calls it (it has no shutdown hook); tests and programs that embed the
        script do."""
        self.start_over()
        self.fetcher.stop()
        self.metrics.stop()
        self.checkpoint.release()

    def samples(self):
        """The reader's metrics, for METRICS_FILE (see Metrics). A server's lag is 0 when
        its last turn found nothing more to read, else the age of the newest object read."""
        bucket, now, prefix = self.settings.BUCKET, self.clock.time(), "nxlog_s3_reader_"
        samples = []
        for server, position in sorted(self.checkpoint.positions.items()):
            labels = {"bucket": bucket, "server": server}
            objects, events, size = self.read.get(server, (0, 0, 0))
            figures = [("objects_total", "counter", "objects read", objects),
                       ("events_total", "counter", "events posted to NXLog", events),
                       ("bytes_total", "counter", "bytes of the objects read, as stored",
                        size),
                       ("set_aside_objects", "gauge", "objects set aside (not read), as the "
                        "checkpoint remembers them", len(position.set_aside))]
            if position.newest is not None:
                lag = 0 if self.caught_up.get(server) else max(0, now - position.newest)
                figures += [("newest_read_timestamp_seconds", "gauge", "key time of the newest "
                             "object read", position.newest),
                            ("lag_seconds", "gauge", "0 once all is read, else how old the "
                             "newest object read is", lag)]
            samples += [(prefix + name, kind, summary, labels, value)
                        for name, kind, summary, value in figures]
        return samples + [(prefix + "errors_total", "counter", "read_data calls that failed, "
                           "by kind", {"bucket": bucket, "kind": kind}, number)
                          for kind, number in sorted(self.errors.items())]


# ---- Commands: status, audit, replay ------------------------------------------------------

RELATIVE_TIME = re.compile(r"^-([0-9]+)([smhd])$")
TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
REPLAY_MARGIN = 3600  # seconds before --from in which a batch holding its events may be keyed
EXIT_S3 = 69  # a command could not read S3 (sysexits' EX_UNAVAILABLE): stderr says why


def command_time(text):
    """A time on the command line (an epoch): ISO 8601 (2026-11-28T10:00:00Z, ...+09:00;
    without a zone, this host's local time), now, or back from now (-90s, -15m, -2h, -1d)."""
    relative = RELATIVE_TIME.match(text.strip())
    if text.strip() == "now" or relative:
        back = int(relative.group(1)) * TIME_UNITS[relative.group(2)] if relative else 0
        return time.time() - back
    epoch = instant(text.strip())
    if epoch is None:
        raise argparse.ArgumentTypeError(
            "%r is not a time: use 2026-11-28T10:00:00Z, 2026-11-28T19:00:00+09:00, "
            "2026-11-28 10:00 (this host's local time), now, or back from now: "
            "--from=-15m, -2h, -1d" % text)
    return epoch


def _margin(text):
    """--margin: seconds, 0 or more (fewer would start the listing after --from)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError("%r is not a number of seconds, 0 or more" % text)
    return value


def _range_text(start, end):
    return "%s to %s" % ("the first object" if start is None else utc_text(start),
                         "the last" if end is None else utc_text(end))


def _between(reader, server, start, end, report=None):
    """The objects of SERVER keyed from START to before END (epochs; None: no bound), as
    Listed in reading order; keys off the scheme reported (or given to REPORT)."""
    start_after = None if start is None else "%s/%s" % (server,
                                                        reader.checkpoint.seconds.text(start))
    for item in reader.listing.listed(server, start_after, report=report):
        if item is PAUSE:
            continue
        if end is not None and item.epoch >= end:
            return
        yield item


def _in_order(fetcher, items, begin):
    """(item, BEGIN(item)) for each of ITEMS in order, BEGIN starting the item's work in the
    fetch threads (a future, or None), begun for twice as many items ahead as there are
    threads."""
    ahead = collections.deque()
    for item in items:
        ahead.append((item, begin(item)))
        if len(ahead) > 2 * fetcher.settings.FETCH_THREADS:
            yield ahead.popleft()
    while ahead:
        yield ahead.popleft()


def _servers_to_read(reader, report=None):
    """SERVER, or with * every server in the bucket (other first segments REPORTed)."""
    if reader.settings.SERVER != "*":
        return reader.settings.SERVER
    return reader.listing.server_names(reader.listing.first_segments(), report)


def _unreported(key, why):
    """Keys off the scheme, for what reports none (a replay reads a range of the scheme)."""


def _print_json(value):
    print(json.dumps(value, sort_keys=True))


def _s3_command(command):
    """COMMAND(settings, arguments) run on a Reader: a missing bucket exits as NXLog's start
    would, S3 failing midway with EXIT_S3, and the fetch threads end with it."""
    def run(settings, arguments):
        reader = Reader(settings)
        try:
            check_bucket(settings, reader.client, reader.log)
            return command(reader, arguments)
        except (BotoCoreError, ClientError) as exc:
            reason = NO_CREDENTIALS if isinstance(exc, NoCredentialsError) else exc
            NXLOG.log_error("%s: cannot read s3://%s/: %s" % (SCRIPT, settings.BUCKET, reason))
            return EXIT_S3
        finally:
            reader.fetcher.stop()
    return run


# -- status --

def reader_status(reader):
    """Where the reader is, from its checkpoint (read, not taken: a running reader may hold
    it), and per server how far behind the newest key in the bucket that is."""
    checkpoint = reader.checkpoint
    checkpoint.load(reader.listing.keys_of, lock=False)
    servers = _servers_to_read(reader, report=_unreported)
    if reader.settings.SERVER == "*":
        servers = sorted(set(servers) | set(checkpoint.positions))
    return {"bucket": reader.settings.BUCKET, "checkpoint": checkpoint.path,
            "in_use": checkpoint.in_use(), "off_scheme_keys": list(checkpoint.other_keys),
            "servers": [_server_status(reader, server) for server in servers]}


def _server_status(reader, server):
    position = reader.checkpoint.positions.get(server)
    newest_read = None if position is None else position.newest
    newest, waiting = None, 0
    horizon = reader.clock.time() + reader.settings.MAX_AHEAD
    start = None if position is None else position.window_start()
    for item in _between(reader, server, start, None, report=_unreported):
        if position is None or not position.done(item):
            waiting += 1
        if item.epoch <= horizon and (newest is None or item.epoch > newest[0]):
            newest = item.epoch, item.key
    status = {"server": server, "newest_read": None if newest_read is None else
              utc_text(newest_read), "newest_in_bucket": None if newest is None else
              utc_text(newest[0]), "newest_key": None if newest is None else newest[1],
              "waiting": waiting, "lag_seconds": None, "retrying": {}, "set_aside": []}
    if newest is not None and newest_read is not None:
        status["lag_seconds"] = max(0, newest[0] - newest_read)
    if position is not None:
        status["retrying"] = {key: attempt[0] for key, attempt in position.attempts.items()}
        status["set_aside"] = [{"key": key, "why": why, "time": when}
                               for key, (why, when) in position.set_aside.items()]
    return status


def _status_command(reader, arguments):
    """`status`: the reader's position and lag per server, and what it set aside."""
    try:
        status = reader_status(reader)
    except CheckpointError as exc:
        reader.log.error(str(exc))
        return EXIT_WARNED
    if arguments.json:
        _print_json(status)
        return 0
    print("checkpoint %s%s" % (status["checkpoint"], " (in use by a running reader)"
                               if status["in_use"] else ""))
    for server in status["servers"]:
        _print_server_status(server)
    if status["off_scheme_keys"]:
        print("keys off the scheme, not read: %s" % ", ".join(
            repr(key) for key in status["off_scheme_keys"]))
    return 0


def _print_server_status(server):
    read = "read up to %s" % server["newest_read"] if server["newest_read"] else \
        "nothing read yet"
    if server["newest_in_bucket"] is None:
        bucket = "no object in the bucket from there on"
    else:
        bucket = "newest in the bucket %s (%r)%s; %s waiting" % (
            server["newest_in_bucket"], server["newest_key"], "" if server["lag_seconds"] is
            None else ": %d s behind" % server["lag_seconds"], count(server["waiting"],
                                                                    "object"))
    print("%s: %s; %s" % (server["server"], read, bucket))
    for key, attempts in sorted(server["retrying"].items()):
        print("  being tried again: %r (%s so far)" % (key, count(attempts, "failed attempt")))
    for entry in server["set_aside"]:
        print("  set aside at %s: %r: %s" % (entry["time"], entry["key"], entry["why"]))


# -- audit --

class Audit(object):
    """What `audit` finds in the objects of the servers it is given: per server and day the
    objects, events and bytes; counters missing inside a second; a batch stored under two
    keys; keys off the scheme; with DEEP, objects that do not decode (or hold another count
    of events than their metadata says). Without DEEP, it reads the listing and each
    object's metadata (a HEAD request), no body."""

    def __init__(self, reader, deep):
        self.reader, self.deep = reader, deep
        self.days = {}  # server -> day -> {"objects", "events", "bytes", "unknown_events"}
        self.problems = []

    def off_scheme(self, key, why):
        self.problems.append({"problem": "off_scheme", "key": key, "why": why})

    def server(self, server, start, end):
        batches = {}  # batch id -> the first key it was found under
        second, counters = None, set()
        items = _between(self.reader, server, start, end, self.off_scheme)
        fetcher = self.reader.fetcher
        for item, future in _in_order(fetcher, items,
                                      functools.partial(fetcher.submit, self._look_at)):
            if item.second != second:
                self._check_counters(server, second, counters)
                second, counters = item.second, set()
            counters.add(item.counter)
            metadata, events, problem = future.result()
            if metadata is None:
                continue  # deleted since it was listed
            self._count(server, item, events)
            if problem is not None:
                self.problems.append(dict(problem, key=item.key))
            batch = metadata.get("nxlog-s3-batch")
            if batch is not None and batch in batches:
                self.problems.append({"problem": "duplicate", "key": item.key, "why": "it holds "
                                      "the batch %s, stored before as %r" % (batch,
                                                                              batches[batch])})
            elif batch is not None:
                batches[batch] = item.key
        self._check_counters(server, second, counters)

    def _look_at(self, item):
        """In a fetch thread: ITEM's (metadata, events, problem); metadata None if it is
        gone. Events come from the metadata, or with DEEP from decoding the object."""
        settings = self.reader.settings
        try:
            if not self.deep:
                head = self.reader.client.head_object(Bucket=settings.BUCKET, Key=item.key)
                return head.get("Metadata", {}), _events_in(head.get("Metadata", {}),
                                                            settings), None
            response = self.reader.fetcher.stream(item.key)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey"):
                return None, None, None
            raise
        metadata = response.get("Metadata", {})
        said = _events_in(metadata, settings)
        try:
            events = sum(1 for _ in self.reader.decoder.events(item.key, response))
        except Exception as exc:  # whatever an object makes happen is that object's alone
            return metadata, said, {"problem": "undecodable", "why": _failure(exc)}
        finally:
            response["Body"].close()
        if said is not None and said != events:
            return metadata, events, {"problem": "miscounted", "why": "its metadata says %s, "
                                      "it holds %s" % (count(said, "event"),
                                                       count(events, "event"))}
        return metadata, events, None

    def _count(self, server, item, events):
        day = self.days.setdefault(server, {}).setdefault(item.second[:10], {
            "objects": 0, "events": 0, "bytes": 0, "unknown_events": 0})
        day["objects"] += 1
        day["bytes"] += item.size
        if events is None:
            day["unknown_events"] += 1
        else:
            day["events"] += events

    def _check_counters(self, server, second, counters):
        """The counters of SECOND run from 1 with no gap, as the writers give them."""
        missing = _gaps(counters)
        if missing:
            self.problems.append({
                "problem": "missing", "key": "%s/%s.%s" % (server, second, missing),
                "why": "that second holds the counters %s: the others were deleted, or never "
                       "stored" % _ranges(counters)})


def _gaps(counters):
    """The counters missing from 1 to the highest of COUNTERS, as "3,5-9": found between the
    counters there are, so that a key such as .99999999999999999999 costs nothing."""
    runs, expected = [], 1
    for counter in sorted(counters):
        if counter > expected:
            runs.append(str(expected) if counter == expected + 1 else
                        "%d-%d" % (expected, counter - 1))
        expected = max(expected, counter + 1)
    return ",".join(runs)


def _events_in(metadata, settings):
    """The events an object holds, as its metadata says; None if it cannot say (a batch
    without the count, an object of another tool read with RAW_LINES). The old scripts'
    objects, with no metadata, hold one each."""
    if "nxlog-s3-events" in metadata:
        try:
            return int(metadata["nxlog-s3-events"])
        except ValueError:
            return None
    batch = metadata.get(METADATA_FORMAT) in ("jsonl", "parquet")
    return None if batch or settings.RAW_LINES else 1


PROBLEM_NAMES = {"missing": "missing", "duplicate": "stored twice", "off_scheme":
                 "off the scheme", "undecodable": "undecodable", "miscounted": "miscounted"}


def _audit_command(reader, arguments):
    """`audit`: per server and day what the bucket holds, and every problem found; exits
    EXIT_WARNED when there is one."""
    if _reversed(arguments):
        return 2
    audit = Audit(reader, arguments.deep)
    for server in _servers_to_read(reader, audit.off_scheme):
        audit.server(server, arguments.start, arguments.end)
    result = {"bucket": reader.settings.BUCKET, "deep": arguments.deep,
              "from": None if arguments.start is None else utc_text(arguments.start),
              "to": None if arguments.end is None else utc_text(arguments.end),
              "servers": audit.days, "problems": audit.problems}
    if arguments.json:
        _print_json(result)
    else:
        _print_audit(result)
    return EXIT_WARNED if audit.problems else 0


def _print_audit(result):
    print("s3://%s/, %s, %s" % (result["bucket"], _range_text(
        instant(result["from"]), instant(result["to"])), "every object decoded" if
        result["deep"] else "listing and metadata (--deep decodes every object)"))
    print("%-20s %-10s %10s %12s %14s" % ("server", "day", "objects", "events", "bytes"))
    for server, days in sorted(result["servers"].items()):
        for day, figures in sorted(days.items()):
            print("%-20s %-10s %10d %12s %14d" % (
                server, day, figures["objects"], figures["events"] if not
                figures["unknown_events"] else "%d+?" % figures["events"], figures["bytes"]))
    print("%s%s" % (count(len(result["problems"]), "problem"),
                    ":" if result["problems"] else ""))
    for problem in result["problems"]:
        print("  %-14s %r: %s" % (PROBLEM_NAMES[problem["problem"]], problem["key"],
                                  problem["why"]))


# -- replay --

class Progress(object):
    """A progress bar on STREAM while it is a terminal: how far through START..END a replay
    is, by key time; nothing at all when STREAM is a file or a pipe."""

    EVERY = 0.2  # seconds between two redraws
    WIDTH = 30

    def __init__(self, stream, start, end, clock):
        self.stream = stream if stream.isatty() else None
        self.start, self.end, self.clock = start, end, clock
        self.last = None

    def show(self, epoch, events, last=False):
        """Redraws the bar at key time EPOCH, EVENTS written: at most every EVERY seconds,
        and for the LAST time at the end of the replay."""
        if self.stream is None or (not last and self.last is not None and
                                   self.clock.monotonic() - self.last < self.EVERY):
            return
        self.last = self.clock.monotonic()
        done = 1.0 if last else min(1.0, max(0.0, (epoch - self.start) /
                                              (self.end - self.start)))
        self.stream.write("\r[%-*s] %3d%% %s, %s " % (self.WIDTH, "#" * int(done * self.WIDTH),
                                                      done * 100, utc_text(epoch),
                                                      count(events, "event")))
        self.stream.flush()

    def close(self, events):
        if self.stream is not None:
            self.show(self.end, events, last=True)
            self.stream.write("\n")
            self.stream.flush()


def _jsonl_line(fields):
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"),
                      default=json_value).encode("utf-8", "surrogatepass") + b"\n"


def _raw_line(fields):
    """raw_event as its line; an event without one as JSON, so that nothing is left out."""
    raw = fields.get("raw_event")
    if raw is None:
        return _jsonl_line(fields)
    return raw_bytes(raw) + b"\n"


class Replay(object):
    """The events of one server received from START to before END, decoded as the reader
    decodes them (but datetime fields as stored, with their zone), in the order it posts
    them (key order), written by LINE(fields) to OUTPUT. An event's time is its
    EventReceivedTime, or its object's key time where it has none. Objects keyed up to MARGIN
    seconds before START are looked at too (a batch is keyed at its first event), those S3
    stored before START (less LANDING_MARGIN) passed over. An object that cannot be decoded,
    or is deleted meanwhile, is named in a warning and counted in MISSED."""

    def __init__(self, reader, server, start, end, margin, line, output):
        self.reader, self.server, self.start, self.end = reader, server, start, end
        self.margin, self.line, self.output = margin, line, output
        self.decoder = Decoder(reader.settings, reader.log, nxlog_times=False)
        self.events = self.objects = self.missed = 0

    def run(self, progress):
        items = (item for item in _between(self.reader, self.server, self.start - self.margin,
                                           self.end, report=_unreported)
                 if item.epoch >= self.start or item.modified >= self.start - LANDING_MARGIN)
        fetcher = self.reader.fetcher
        for item, future in _in_order(fetcher, items, fetcher.ahead):
            try:
                response = (future or fetcher.get(item)).result()
            except Exception as exc:  # an object's failure is that object's alone
                self._missed(item, "it was deleted while the replay ran" if isinstance(
                    exc, ClientError) and error_code(exc) in ("404", "NoSuchKey") else
                    "it cannot be fetched (%s)" % _failure(exc))
                continue
            self._write_events(item, response)
            progress.show(item.epoch, self.events)

    def _missed(self, item, why):
        self.missed += 1
        self.reader.log.warning("%s: %s; its events are not in the replay" % (
            quoted(self.reader.settings.BUCKET, item.key), why))

    def _write_events(self, item, response):
        self.objects += 1
        try:
            for fields in self.decoder.events(item.key, response):
                epoch = instant(fields.get("EventReceivedTime"))
                if self.start <= (item.epoch if epoch is None else epoch) < self.end:
                    self.output.write(self.line(fields))
                    self.events += 1
        except Exception as exc:  # an object's failure is that object's alone
            self._missed(item, "it cannot be decoded (%s)" % _failure(exc))
        finally:
            response["Body"].close()


def _replay_command(reader, arguments):
    """`replay`: one server's events of a time range, on stdout or in a file."""
    servers = reader.settings.SERVER
    if servers == "*" or len(servers) != 1:
        NXLOG.log_error("%s: replay reads one server: give --server NAME" % SCRIPT)
        return 2
    if _reversed(arguments):
        return 2
    try:
        output = _new_file(arguments.output, arguments.force) if arguments.output else \
            sys.stdout.buffer
    except OSError as exc:
        NXLOG.log_error("%s: cannot write -o %s: %s%s" % (
            SCRIPT, arguments.output, exc, "; --force replaces it" if
            exc.errno in (errno.EEXIST, errno.ELOOP) else ""))
        return 2
    replay = Replay(reader, servers[0], arguments.start, arguments.end, arguments.margin,
                    {"jsonl": _jsonl_line, "raw": _raw_line}[arguments.format], output)
    progress = Progress(sys.stderr, arguments.start, arguments.end, reader.clock)
    try:
        replay.run(progress)
    finally:
        progress.close(replay.events)
        output.flush()
        if arguments.output:
            output.close()
    reader.log.info("replayed %s of %s from %s, %s" % (
        count(replay.events, "event"), servers[0], count(replay.objects, "object"),
        _range_text(arguments.start, arguments.end)))
    return EXIT_WARNED if replay.missed else 0


def _reversed(arguments):
    """Whether --to comes before --from (or with it), logged as the usage error it is."""
    if None not in (arguments.start, arguments.end) and arguments.end <= arguments.start:
        NXLOG.log_error("%s: --to %s does not come after --from %s" % (
            SCRIPT, utc_text(arguments.end), utc_text(arguments.start)))
        return True
    return False


def _new_file(path, force):
    """PATH made anew, readable by its owner only; an existing file or link there refused,
    or with FORCE removed first (a link is never written through)."""
    if force and os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)
    return open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600), "wb")


def _time_option(flag, what, required):
    return (flag, {"dest": "start" if flag == "--from" else "end", "type": command_time,
                   "required": required, "metavar": "TIME", "help": what})


COMMANDS = {
    "check": ("make every start-up check NXLog would make (settings, checkpoint folder and "
              "file, bucket, credentials), writing nothing to the bucket",
              lambda settings, arguments: check_command(Reader(settings), arguments), ()),
    "status": ("show, per server, where the reader is, how far behind the newest key in the "
               "bucket, and the objects it set aside and why (read from the checkpoint, also "
               "while NXLog runs)", _s3_command(_status_command), [JSON_OPTION]),
    "audit": ("show, per server and day, the objects, events and bytes stored, and find "
              "counters missing inside a second, a batch stored twice, keys off the scheme "
              "and, with --deep, objects that do not decode; exit status 1 if it found any",
              _s3_command(_audit_command),
              [_time_option("--from", "the first second to audit (default: the first object)",
                            False),
               _time_option("--to", "the second to stop before (default: the last object)",
                            False),
               ("--deep", {"action": "store_true", "help": "fetch and decode every object, "
                           "not only its metadata"}), JSON_OPTION]),
    "replay": ("write the events one server received in a time range, in order, decoded as "
               "the reader decodes them", _s3_command(_replay_command),
               [_time_option("--from", "the first time of the range: ISO 8601 with a zone "
                             "(2026-11-28T10:00:00Z), local time without one, now, or back "
                             "from now: --from=-15m, -2h, -1d", True),
                _time_option("--to", "the time the range ends before", True),
                ("--format", {"choices": ("jsonl", "raw"), "default": "jsonl",
                              "help": "jsonl: every field, one JSON object a line; raw: "
                              "raw_event a line (default: %(default)s)"}),
                ("-o", {"dest": "output", "metavar": "FILE", "help": "write to FILE, a new "
                        "file readable by its owner only, instead of stdout"}),
                ("--force", {"action": "store_true", "help": "with -o: replace FILE if it "
                             "exists (a link there is removed, never written through)"}),
                ("--margin", {"type": _margin, "default": REPLAY_MARGIN, "metavar": "SECONDS",
                              "help": "how long before --from a batch holding events of the "
                              "range may be keyed: at least the writers' BATCH_AGE (default: "
                              "%(default)s)"})])}


def _start_under_nxlog():
    """Builds the reader from the settings at the top of this file and NXLOG_S3_*, and
    starts it; a setting that can never work keeps NXLog from starting, with one line."""
    try:
        return Reader(ReaderSettings.of_script(globals(), __file__)).start()
    except ConfigError as exc:
        refuse_to_start(exc)


if __name__ == "__main__":
    sys.exit(run_command(sys.argv[1:], ReaderSettings, globals(), __file__, COMMANDS))
instance = _start_under_nxlog()
read_data = instance.read_data
read_event = read_data  # the old scripts' name, for configurations that say `Call read_event`
stop = instance.stop
