"""NXLog om_python output: ships events to Amazon S3 or any S3-compatible store, losing none.

    <Output s3>
        Module      om_python
        PythonCode  /etc/nxlog/s3_write.py
    </Output>

NXLog calls write_data(event) for every event. Before it returns, the event is on disk in
SPOOL_DIR (unless that disk is full: see Spool.append); background threads upload what the
spool holds and delete it only once S3 has confirmed it. No call holds NXLog for more than
about a second, so that it can stop at any moment. NXLog gives an output no shutdown hook
and drops an event whose write_data raises, so the spool is what keeps events across
restarts, crashes and S3 outages: at every start the script uploads what an earlier run
left there, first.

Objects are named SERVER/YYYY-MM-DD/HH.MM.SS.N after their (first) event's EventReceivedTime
(UTC unless KEY_TIME is local; this host's clock for a time it cannot read or one more than
MAX_AHEAD ahead of it; never before a key it used already), N counting the objects of that
second from 1, and for a batch a suffix that names its content (.jsonl.gz, .parquet;
KEY_SUFFIX). By default each event is one object (as the old scripts did); BATCH_EVENTS above
1 stores many events per object as gzip-compressed JSON lines (or Parquet), thousands of
times cheaper. Datetime fields are stored with their zone. Every upload is conditional
(If-None-Match: *): an object is never overwritten, and an upload retried after it landed is
recognised by its batch id and not stored twice.

Settings are below; each one can also be set without editing this file, through the
environment variable NXLOG_S3_<NAME> (NXLOG_S3_BUCKET, NXLOG_S3_BATCH_EVENTS, ...).
Credentials, region and endpoint come from the standard AWS chain (AWS_PROFILE,
AWS_ENDPOINT_URL, ~/.aws/config, instance roles), never from this file. Python 3.8+, boto3.

Run as a command, outside NXLog: python3 s3_write.py check (would NXLog start?) or status
(what the spool holds); --help says more.
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
                              # fields) or pickle (old consumers only); batches: JSON lines,
                              # or parquet (needs the pyarrow package)
COMPRESSION = "auto"          # none, gzip, zstd (needs the zstandard package); auto: none for
                              # one event per object, gzip for batches
PARQUET_COMPRESSION = "zstd"  # inside Parquet batches: zstd, snappy, gzip or none
KEY_SUFFIX = "auto"           # a suffix naming the content (.jsonl.gz, .parquet, .txt): auto
                              # for batches only, always, or never (the old bare keys)
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
METRICS_FILE = ""             # e.g. /var/lib/node_exporter/textfile/s3_write.prom: Prometheus
                              # metrics, rewritten every 5 s; empty: none
# ---- End of settings ---------------------------------------------------------------------

import argparse
import base64
import collections
import datetime
import errno
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
import sys
import tempfile
import threading
import time
import traceback
import uuid

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
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

OBJECT_VERSION = "1"  # x-amz-meta-nxlog-s3-version: the layout of these metadata entries
CONTENT_TYPES = {"raw": "text/plain; charset=utf-8", "json": "application/json",
                 "pickle": "application/x-python-pickle", "jsonl": "application/x-ndjson",
                 "parquet": "application/vnd.apache.parquet"}
LINE_FORMATS = ("jsonl", "parquet")  # batches spooled as JSON lines (see Encoder)
PARQUET_ROWS = 32768  # events per row group: what a Parquet batch holds in memory at a time
PARQUET_COLUMNS = 256  # field names that get a column of their own in a Parquet batch; the
                       # others of an event are kept together, as a JSON object, in one more
MORE_FIELDS = "nxlog-s3-more-fields"  # the schema's metadata naming that column
OLDEST_BOTOCORE = (1, 35, 16)  # the first that sends If-None-Match on PutObject
MAX_KEY_CONFLICTS = 100  # taken keys in a row before a batch waits and tries again later
REMEMBERED_SECONDS = 4096  # seconds whose last counter is kept in memory
IN_MEMORY_UPLOAD = 64 * 1024 * 1024  # larger batches stream through the transfer manager,
# as one PUT up to the 5 GiB one PUT may hold, and as a multipart upload only above that: some
# stores (Ceph's radosgw 16) ignore If-None-Match when a multipart upload completes.
TRANSFER_CONFIG = TransferConfig(multipart_threshold=5 * 1024 ** 3,
                                 multipart_chunksize=64 * 1024 * 1024, use_threads=False)
RETRY_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)  # seconds between upload rounds while S3 fails
MAX_CALL_WAIT = 1.0  # seconds a write_data call may wait for room: NXLog cannot stop a module
                     # while it is inside a call, and waits for it before it stops cleanly
LAST_STORED = ".last-stored.json"  # in SPOOL_DIR: the manifest of the latest key stored
LAST_ERROR = ".last-error.json"  # in SPOOL_DIR: the last upload error, for `status`
LAST_KEYS = ".last-keys.json"  # in SPOOL_DIR: the keys stored last, for `status`...
RECENT_KEYS = 10  # ...this many
MANIFEST_NAME = re.compile(r"^\d+\.json$")  # a closed batch's manifest (see Spool)
OPEN_NAME = re.compile(r"^\d+-\d+\.[a-z]+\.open$")  # the batch being filled
LOCK_WAIT = 2.0  # seconds a start waits for the spool's lock before it takes it as another
                 # writer's (`check` and `status` hold it for an instant, to see)
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # no quotas on Windows
PERMANENT_ERRORS = {"AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "AllAccessDisabled",
                    "SignatureDoesNotMatch", "InvalidBucketName", "KMS.NotFoundException",
                    "NoCredentialsError"}

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


# ---- The writer's settings ----------------------------------------------------------------

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


def _check_botocore(version):
    """Refuses a botocore too old for conditional writes (Debian 12 packages 1.29)."""
    found = tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
    if found < OLDEST_BOTOCORE:
        raise ConfigError("%s: botocore %s cannot write objects conditionally (If-None-Match), "
                          "so it could overwrite objects; install boto3 1.35.16 or newer for "
                          "the Python NXLog runs (see README.md)" % (SCRIPT, version))


class WriterSettings(Settings):
    """The settings at the top of this file, parsed; also what follows from them: BATCHING,
    BODY_FORMAT (what a batch's body holds) and COMPRESSION with auto resolved."""

    SPEC = (
        ("BUCKET", _bucket), ("SERVER", _server), ("KEY_TIME", _choice("utc", "local")),
        ("MAX_AHEAD", _number(int, 0)), ("BATCH_EVENTS", _number(int, 1)),
        ("BATCH_BYTES", _number(int, 1)), ("BATCH_AGE", _number(float, 0.1)),
        ("FORMAT", _choice("raw", "json", "pickle", "parquet")),
        ("COMPRESSION", _choice("auto", "none", "gzip", "zstd")),
        ("PARQUET_COMPRESSION", _choice("zstd", "snappy", "gzip", "none")),
        ("KEY_SUFFIX", _choice("auto", "always", "never")), ("SPOOL_DIR", _path),
        ("SPOOL_MAX_BYTES", _number(int, 1)), ("SPOOL_FULL", _choice("block", "drop")),
        ("FSYNC", _choice("event", "batch", "os")), ("UPLOAD_THREADS", _number(int, 1, 64)),
        ("STORAGE_CLASS", _optional("[A-Z_]+", "a storage class such as STANDARD_IA")),
        ("SSE", _sse),
        ("SSE_KMS_KEY_ID", _optional("[A-Za-z0-9:/_+=.,@-]+", "a KMS key id")),
        ("EXPECTED_BUCKET_OWNER", _optional("[0-9]{12}", "a 12-digit account id")),
        ("RETRY_MODE", _choice("standard", "adaptive")), ("RETRY_ATTEMPTS", _number(int, 1)),
        ("TLS_VERIFY", _flag), ("CONNECT_TIMEOUT", _number(float, 0.1)),
        ("READ_TIMEOUT", _number(float, 0.1)), ("METRICS_FILE", _metrics_file))

    def check(self):
        self.BATCHING = self.BATCH_EVENTS > 1
        parquet = self.FORMAT == "parquet"
        self.BODY_FORMAT = "parquet" if parquet else "jsonl" if self.BATCHING else self.FORMAT
        if parquet:
            self._check_parquet()
        if self.COMPRESSION == "auto":
            self.COMPRESSION = "gzip" if self.BATCHING and not parquet else "none"
        if self.BATCHING and self.FORMAT == "pickle":
            raise ConfigError("%s: FORMAT=pickle cannot be batched: batches are JSON lines; use "
                              "FORMAT=json, or BATCH_EVENTS=1" % SCRIPT)
        if self.COMPRESSION == "zstd" and zstandard is None:
            raise ConfigError("%s: COMPRESSION=zstd needs the zstandard package for the Python "
                              "NXLog runs (pip install zstandard), or use gzip" % SCRIPT)
        if self.SSE_KMS_KEY_ID and self.SSE != "aws:kms":
            raise ConfigError("%s: SSE_KMS_KEY_ID is set, so SSE must be aws:kms" % SCRIPT)
        _check_botocore(botocore.__version__)

    def _check_parquet(self):
        if not self.BATCHING:
            raise ConfigError("%s: FORMAT=parquet is for batches: set BATCH_EVENTS above 1 (10000 "
                              "or more)" % SCRIPT)
        if self.COMPRESSION not in ("auto", "none"):
            raise ConfigError("%s: COMPRESSION=%s with FORMAT=parquet: Parquet compresses inside "
                              "the file, as PARQUET_COMPRESSION says; leave COMPRESSION at auto"
                              % (SCRIPT, self.COMPRESSION))
        if parquet_library() is None:
            raise ConfigError("%s: FORMAT=parquet needs the pyarrow package for the Python NXLog "
                              "runs (pip install pyarrow), or use FORMAT=json" % SCRIPT)


# ---- Events -------------------------------------------------------------------------------

def _event_epoch(received):
    """EventReceivedTime (a local-time string in NXLog, zoned in a batch's lines) as seconds
    since the epoch; None for a missing or unparsable value, or one before 1970."""
    epoch = instant(received)
    return epoch if epoch is not None and epoch >= 0 else None


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


def _zoned_fields(event):
    """EVENT's fields, its datetime fields (EventReceivedTime, EventTime, ...: text in the
    form NXLog gives them, 'YYYY-MM-DD HH:MM:SS') with their zone, so that whoever reads the
    object alone can tell the instant."""
    fields = _fields(event)
    for name, value in fields.items():
        if type(value) is str and len(value) == 19 and value[10] == " ":
            fields[name] = _zoned(value)  # cached: a second's events share their times
    return fields


def _typed_json_value(value):
    """JSON for binary fields in a batch spooled for Parquet, which keeps them binary: an
    object, which no other field value is."""
    return {"base64": json_value(value)}


def _json_encoder(default=json_value):
    """Compact JSON for event fields, the same as json.dumps gives. json.dumps builds a new
    C encoder at every call, a third of its time for one event; this builds it once, with
    the arguments json.encoder gives it (the public, slower way where there is no C one)."""
    from json.encoder import c_make_encoder, encode_basestring_ascii
    if c_make_encoder is None:
        return json.JSONEncoder(default=default, separators=(",", ":")).encode
    encode = c_make_encoder(None, default, encode_basestring_ascii, None, ":", ",", False,
                            False, True)
    return lambda fields: "".join(encode(fields, 0))


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
        self.json_text = _json_encoder(_typed_json_value if self.batch_format == "parquet"
                                       else json_value)

    def json_bytes(self, fields):
        return self.json_text(fields).encode()

    def record(self, event):
        """(body format, bytes) of EVENT."""
        if self.batching:
            return self.batch_format, (self.json_text(_zoned_fields(event)) + "\n").encode()
        if self.settings.FORMAT == "raw":
            raw_event = event.get_field("raw_event")
            if raw_event is not None:
                return "raw", raw_bytes(raw_event)
            self.log.limited("no raw_event", self.log.warning, "an event without raw_event is "
                             "stored as json, so that its fields are kept")
            return "json", self.json_bytes(_zoned_fields(event))
        if self.settings.FORMAT == "json":
            return "json", self.json_bytes(_zoned_fields(event))
        return "pickle", _pickle(_fields(event))


# ---- Keys ---------------------------------------------------------------------------------

class Keys(object):
    """Names batches: SERVER/YYYY-MM-DD/HH.MM.SS.N, the second of a batch's first event
    (this host's clock for a time it cannot trust), never before a key it gave already, and
    N past every counter it gave (or, after a conflict, found) in that second. What it must
    remember across restarts is in the manifests of the spool (see Spool)."""

    def __init__(self, settings, client, clock, log):
        self.settings, self.client, self.clock, self.log = settings, client, clock, log
        self.lock = threading.Lock()
        self.last_counter = collections.OrderedDict()  # "SERVER/YYYY-MM-DD/HH.MM.SS" -> N
        self.newest_epoch = 0  # the latest key time given

    def key_time(self, received):
        """The time to key a batch at whose first event was received at RECEIVED: that time,
        unless it is missing, cannot be read or lies more than MAX_AHEAD ahead of this host's
        clock (9999-12-31 would key every later event there, keys never going back): then
        the clock's, with a warning but for a missing one. The event keeps its field."""
        now = self.clock.time()
        epoch = _event_epoch(received)
        ahead = self.settings.MAX_AHEAD
        if received is None or (epoch is not None and epoch <= now + ahead):
            return now if epoch is None else epoch  # no time at all: the clock's, no warning
        why = "cannot be read as a time since 1970" if epoch is None else \
            "lies more than MAX_AHEAD=%d s ahead of this host's clock" % ahead
        self.log.limited("event time", self.log.warning, "EventReceivedTime %r %s: the event "
                         "is keyed at this host's clock instead, and keeps its field"
                         % (received, why))
        return now

    def second(self, epoch):
        local = self.settings.KEY_TIME == "local"
        stamp = time.localtime(epoch) if local else time.gmtime(epoch)
        return "%s/%s" % (self.settings.SERVER, time.strftime("%Y-%m-%d/%H.%M.%S", stamp))

    def assign(self, batch, after=0):
        """Gives BATCH its key, SECOND.N past AFTER. Its time is its first event's, but never
        before a key given already, so that a clock set back (or a forward jump put right)
        cannot put keys behind a reader's lookback window. The caller records the key in the
        manifest before any upload."""
        with self.lock:
            if batch.key_epoch is None:
                batch.key_epoch = max(batch.epoch, self.newest_epoch)
            self.newest_epoch = max(self.newest_epoch, batch.key_epoch)
            second = self.second(batch.key_epoch)
            counter = max(self.last_counter.get(second, 0), after) + 1
            self._taken(second, counter)
            batch.key = "%s.%d%s" % (second, counter, self.suffix(batch.format))

    def _taken(self, second, counter):
        """COUNTER of SECOND is taken: the next key of SECOND comes after it."""
        self.last_counter[second] = max(self.last_counter.get(second, 0), counter)
        self.last_counter.move_to_end(second)
        if len(self.last_counter) > REMEMBERED_SECONDS:
            self.last_counter.popitem(last=False)

    def suffix(self, body_format):
        """What ends the keys of objects of BODY_FORMAT, as KEY_SUFFIX says: a name of the
        content that query engines go by (.jsonl.gz), or nothing (the old scripts' keys)."""
        settings = self.settings
        if settings.KEY_SUFFIX == "never" or (settings.KEY_SUFFIX == "auto" and
                                              not settings.BATCHING):
            return ""
        return FORMAT_SUFFIXES[body_format] + ("" if body_format == "parquet" else
                                               COMPRESSION_SUFFIXES[settings.COMPRESSION])

    def assign_after_conflict(self, batch):
        """Another object has BATCH's key: the next counter past every one in S3 now."""
        self.assign(batch, after=self.highest_counter(self.second(batch.key_epoch)))

    def highest_counter(self, second):
        """The highest N among the objects SECOND.N (with any suffix) that exist now."""
        highest = 0
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.BUCKET, Prefix=second + ".", **self.settings.owner())
        for page in pages:
            for item in page.get("Contents", ()):
                match = SCHEME_KEY.match(item["Key"])
                if match and "%s/%s" % match.group(1, 2) == second:
                    highest = max(highest, int(match.group(3)))
        return highest

    def follow(self, batch, where):
        """Later keys come after BATCH's, a batch found in the spool (in the file WHERE),
        unless this host's clock is now more than MAX_AHEAD behind it: later keys then follow
        the clock, and the reader's re-listing (LATE_HORIZON) reads them."""
        if batch.key_epoch is None:  # keyed by an older version, by its first event's time
            batch.key_epoch = batch.epoch
        if batch.key_epoch > self.clock.time() + self.settings.MAX_AHEAD:
            self.log.warning("%s holds the key time %s, more than MAX_AHEAD=%d s ahead of "
                             "this host's clock: later keys follow the clock" % (
                                 os.path.abspath(where), utc_text(batch.key_epoch),
                                 self.settings.MAX_AHEAD))
            return
        with self.lock:
            self.newest_epoch = max(self.newest_epoch, batch.key_epoch)
            match = SCHEME_KEY.match(batch.key or "")
            if match:  # no later key of its second takes its counter, under any suffix
                self._taken("%s/%s" % match.group(1, 2), int(match.group(3)))


# ---- The spool ----------------------------------------------------------------------------
#
# SEQ-EPOCH.FORMAT.open  the batch being filled (EPOCH: its first event's time)
# SEQ.json        a closed batch's manifest: id, format, events, times and its key
# SEQ.data        a closed batch's body, uncompressed
# .last-stored.json  the manifest of the batch stored with the latest key time
# Closing writes the manifest before it renames .open to .data, so that after a crash at
# any point the start-up recovery knows every batch: nothing waits in the spool unnamed.

class Batch(object):
    """A closed batch: its manifest, and where its body waits in the spool FOLDER."""

    FIELDS = ("seq", "id", "format", "epoch", "first", "last", "events", "bytes", "key",
              "key_epoch")

    def __init__(self, folder, **manifest):
        self.folder = folder
        for name in self.FIELDS:
            setattr(self, name, manifest.get(name))

    def path(self, suffix):
        return os.path.join(self.folder, "%012d.%s" % (self.seq, suffix))

    def manifest(self):
        return json.dumps({name: getattr(self, name) for name in self.FIELDS}).encode()


def _read_batch(folder, path):
    with open_nofollow(path) as handle:
        return Batch(folder, **json.loads(handle.read().decode()))


class SpoolFull(RuntimeError):
    """write_data refuses an event (SPOOL_FULL=drop): NXLog logs this and drops the event."""

    def __init__(self, reason):
        RuntimeError.__init__(self, "%s: %s" % (SCRIPT, reason))


class Spool(object):
    """The batch being filled and the closed batches waiting for S3, on disk in SPOOL_DIR.

    write_data appends to the open batch under the lock; the uploader threads close aged
    batches, take closed ones oldest first (each batch by one thread at a time), and delete
    each once S3 confirmed it.
    """

    def __init__(self, settings, keys, clock, log, disk, stopping):
        self.settings, self.keys, self.clock, self.log, self.disk = (
            settings, keys, clock, log, disk)
        self.stopping = stopping  # the writer's: set, the uploader threads take no more
        self.folder = settings.SPOOL_DIR
        # What every event reads, kept at hand: write_data is the hot path.
        self.max_bytes, self.batch_events = settings.SPOOL_MAX_BYTES, settings.BATCH_EVENTS
        self.batch_bytes, self.fsync_event = settings.BATCH_BYTES, settings.FSYNC == "event"
        self.write = disk.write
        self.lock = threading.Condition(threading.Lock())
        self.closed = collections.OrderedDict()  # seq -> Batch, oldest first
        self.uploading = set()  # the seqs of the closed batches an uploader thread has taken
        self.bytes = 0  # what the spool holds, open batch included
        self.closed_events = 0  # what the closed batches hold
        self.taken = 0  # events written to the spool since the start
        self.dropped = 0
        self.held = collections.deque()  # (format, record, received) the full disk refused
        self.open_fd = None
        self.open_seq = self.open_epoch = self.open_last = None
        self.open_events = self.open_bytes = 0
        self.open_format = None
        self.open_since = None  # monotonic time of the open batch's first event
        self.next_seq = 1
        self.lock_fd = None
        self.last_stored_epoch = 0  # the key time in LAST_STORED
        self.recent = collections.deque(maxlen=RECENT_KEYS)  # what LAST_KEYS holds

    def where(self):
        return os.path.abspath(self.folder)

    # -- start-up --

    def open(self):
        """Makes sure the folder can be used, and takes it: no other writer may use it."""
        private_directory(self.folder, "SPOOL_DIR", self.log, own=True)
        lock = os.path.join(self.folder, ".lock")
        deadline = self.clock.monotonic() + LOCK_WAIT
        try:
            fd = exclusive_lock(lock)
            while fd is None and self.clock.monotonic() < deadline:
                self.clock.sleep(0.05)  # a check or status may hold it for an instant
                fd = exclusive_lock(lock)
        except OSError as exc:  # a link planted there (ELOOP), say
            raise ConfigError("%s: cannot lock the spool %s: %s" % (SCRIPT, lock, exc)) from None
        if fd is None:
            raise ConfigError("%s: another writer uses the spool %s: give each <Output> its "
                              "own NXLOG_S3_SPOOL_DIR" % (SCRIPT, self.where()))
        self.lock_fd = fd

    def in_use(self):
        """A check of the folder that changes nothing (a missing one is not made): whether
        another writer uses the spool now."""
        return private_directory(self.folder, "SPOOL_DIR", self.log, make=False) and \
            lock_held(os.path.join(self.folder, ".lock"))

    def recover(self):
        """Takes up what an earlier run left, and the latest key time it stored."""
        self._recover_last_stored()
        self.recent.extend((_json_file(os.path.join(self.folder, LAST_KEYS)) or {}).get(
            "keys", []))
        self._recover()

    def _recover(self):
        """Takes up what an earlier run left: closed batches, and the batch it was filling."""
        names = sorted(os.listdir(self.folder))
        for name in names:
            if name.startswith(".tmp."):
                os.unlink(os.path.join(self.folder, name))
        manifests = {int(name[:-5]): name for name in names if MANIFEST_NAME.match(name)}
        opens = {int(name.split("-")[0]): name for name in names if OPEN_NAME.match(name)}
        for seq in sorted(set(manifests) | set(opens)):
            self.next_seq = max(self.next_seq, seq + 1)
            try:
                batch = self._recovered_batch(seq, manifests.get(seq), opens.get(seq))
            except (ValueError, TypeError, KeyError) as exc:  # a damaged manifest or name
                self._set_aside(seq, exc)
                continue
            if batch is not None:
                self.closed[seq] = batch
                self.closed_events += batch.events
                self.bytes += batch.bytes
        if self.closed:
            self.log.info("%s (%s) left by an earlier run %s uploaded first" % (
                count(len(self.closed), "batch", "batches"), count(self.closed_events, "event"),
                "is" if len(self.closed) == 1 else "are"))

    def _recover_last_stored(self):
        """The key time of the last batch stored, kept in LAST_STORED across restarts, so
        that keys never go back even once the spool is empty."""
        path = os.path.join(self.folder, LAST_STORED)
        try:
            batch = _read_batch(self.folder, path)
            if not isinstance(batch.key_epoch, (int, float)):
                raise ValueError("no key_epoch")
        except FileNotFoundError:
            return
        except (ValueError, TypeError) as exc:
            self.log.warning("%s cannot be read (%s): the next keys follow the events' times"
                             % (os.path.abspath(path), exc))
            return
        self.keys.follow(batch, path)
        self.last_stored_epoch = batch.key_epoch

    def _set_aside(self, seq, reason):
        """Moves the files of a batch that cannot be understood to SPOOL_DIR/damaged/, where
        they stay for a person to look at, and goes on with the others."""
        damaged = os.path.join(self.folder, "damaged")
        os.makedirs(damaged, mode=0o700, exist_ok=True)
        prefix = "%012d" % seq
        for name in os.listdir(self.folder):
            if name.startswith(prefix):
                os.replace(os.path.join(self.folder, name), os.path.join(damaged, name))
        self.log.error("the spooled batch %s cannot be read (%s); its files are kept in %s"
                       % (prefix, reason, os.path.abspath(damaged)))

    def _recovered_batch(self, seq, manifest_name, open_name):
        if manifest_name is not None:
            path = os.path.join(self.folder, manifest_name)
            batch = _read_batch(self.folder, path)
            self.keys.follow(batch, path)
            if open_name is not None:  # the crash came between manifest and rename
                os.replace(os.path.join(self.folder, open_name), batch.path("data"))
            if os.path.exists(batch.path("data")):
                return batch
            os.unlink(batch.path("json"))  # uploaded; the crash came between the two deletes
            return None
        return self._close_torn(seq, open_name)

    def _close_torn(self, seq, open_name):
        """The batch an earlier run was filling: cut a torn last line, then close it."""
        path = os.path.join(self.folder, open_name)
        with open_nofollow(path) as handle:
            body = handle.read()
        epoch, body_format, _ = open_name.split("-")[1].split(".")
        epoch = int(epoch)
        if body_format in LINE_FORMATS and not body.endswith(b"\n"):
            body = body[:body.rfind(b"\n") + 1]
            with open_nofollow(path, "r+b") as handle:
                handle.truncate(len(body))
        if not body:
            os.unlink(path)
            return None
        events = body.count(b"\n") if body_format in LINE_FORMATS else 1
        batch = Batch(self.folder, seq=seq, id=uuid.uuid4().hex, format=body_format,
                      epoch=epoch, first=utc_text(epoch),
                      last=self._last_time(body, body_format, epoch), events=events,
                      bytes=len(body))
        self.keys.assign(batch)
        self.save(batch)
        os.replace(path, batch.path("data"))
        return batch

    @staticmethod
    def _last_time(body, body_format, epoch):
        if body_format in LINE_FORMATS:
            last_line = body[body.rfind(b"\n", 0, len(body) - 1) + 1:]
            try:
                epoch = _last_epoch(json.loads(last_line).get("EventReceivedTime"), epoch)
            except (ValueError, AttributeError):
                pass
        return utc_text(epoch)

    def note_error(self, key, code, reason):
        """Keeps the last upload error in LAST_ERROR, for `status` (left to the OS to sync:
        it is only news)."""
        error = {"time": utc_text(self.clock.time()), "key": key, "code": code,
                 "reason": reason}
        try:
            self.disk.write_atomically(os.path.join(self.folder, LAST_ERROR),
                                       json.dumps(error).encode(), sync=False)
        except OSError:
            pass  # a full disk: the log says it all the same

    def note_stored(self, batch):
        """Keeps BATCH's key in LAST_KEYS, the RECENT_KEYS stored last, for `status` (left to
        the OS to sync, as LAST_ERROR)."""
        with self.lock:
            self.recent.append({"key": batch.key, "events": batch.events,
                                "stored": utc_text(self.clock.time())})
            keys = json.dumps({"keys": list(self.recent)}).encode()
        try:
            self.disk.write_atomically(os.path.join(self.folder, LAST_KEYS), keys, sync=False)
        except OSError:
            pass

    def save(self, batch):
        """Writes BATCH's manifest (its key included) durably, unless FSYNC=os."""
        self.disk.write_atomically(batch.path("json"), batch.manifest(),
                                   self.settings.FSYNC != "os")

    # -- write_data's side --

    def append(self, body_format, record, received):
        """Puts one event's record on disk, in the open batch, and closes the batch when
        full. Returns within about MAX_CALL_WAIT, since NXLog cannot stop a module while it
        is inside a call: while the spool is full, it waits that long for uploads to free
        room, then takes the event all the same (SPOOL_FULL=block) or refuses it (drop).
        A full disk likewise: then the event is held in memory until the disk takes it."""
        with self.lock:
            deadline = None
            if self.bytes + len(record) > self.max_bytes:
                deadline = self._wait_for_room(len(record))
            if not self.held:
                try:
                    self._write_event(body_format, record, received)
                    self._close_if_full()
                    return
                except OSError as exc:
                    if not self._worth_waiting(exc):
                        self._refuse(exc)
            self.held.append((body_format, record, received))
            self._write_held(deadline or self.clock.monotonic() + MAX_CALL_WAIT, calling=True)

    def _write_held(self, deadline, calling=False):
        """Writes the records held, oldest first, retrying a full disk until DEADLINE; what
        is still held then is written at the next call, or when an upload frees room.
        CALLING: for write_data, whose event (the last held) is refused if the disk fails
        otherwise; the events before it were taken, and stay held."""
        delay = 0.01
        while self.held:
            try:
                self._write_event(*self.held[0])
            except OSError as exc:
                if not self._worth_waiting(exc):
                    if not calling:
                        return
                    self.held.pop()  # this call's event: refused, NXLog logs why
                    self._refuse(exc)
                self.log.limited("disk full", self.log.warning, "the disk of the spool %s is "
                                 "full (%s): write_data waits up to %g s for room, then holds "
                                 "the event in memory until the disk takes it (%s held now; "
                                 "lost if NXLog stops first)" % (
                                     self.where(), exc.strerror, MAX_CALL_WAIT,
                                     count(len(self.held), "event")))
                if self.clock.monotonic() + delay > deadline:
                    return
                self.lock.wait(delay)
                delay = min(delay * 2, 1.0)
                continue
            self.held.popleft()
            self._close_if_full()

    def _close_if_full(self):
        if self.open_events >= self.batch_events or self.open_bytes >= self.batch_bytes:
            self._try_to_close()

    def _worth_waiting(self, exc):
        """Whether a write that failed with EXC may work once uploads free room."""
        return exc.errno in DISK_FULL and self.settings.SPOOL_FULL == "block"

    def _refuse(self, exc):
        if exc.errno in DISK_FULL:
            self.dropped += 1
            raise SpoolFull("the disk of the spool %s is full (%s): event dropped, %d dropped "
                            "so far" % (self.where(), exc.strerror, self.dropped))
        raise SpoolFull("cannot write to the spool %s: %s: event refused" % (self.where(), exc))

    def _write_event(self, body_format, record, received):
        if self.open_fd is not None and self.open_format != body_format:
            self._close_open()
        if self.open_fd is None:
            self._open(body_format, self.keys.key_time(received))
        self._write_whole(record)
        if self.fsync_event:
            self.disk.fsync(self.open_fd)
        self.open_events += 1
        self.open_bytes += len(record)
        self.bytes += len(record)
        self.taken += 1
        self.open_last = received

    def _write_whole(self, record):
        """All of RECORD, or none of it: a write the disk cut short (full) is taken back, so
        that no torn line sits between two whole ones."""
        try:
            if self.write(self.open_fd, record) == len(record):
                return
            raise OSError(errno.ENOSPC, "the disk took only part of the event")
        except OSError:
            self.disk.ftruncate(self.open_fd, self.open_bytes)
            raise

    def _wait_for_room(self, size):
        """Waits up to MAX_CALL_WAIT for uploads to free room for SIZE bytes, and returns
        when that wait ends (SPOOL_FULL=block); or refuses the event (drop)."""
        deadline = self.clock.monotonic() + MAX_CALL_WAIT
        limit = self.max_bytes
        if size > limit:
            raise SpoolFull("an event of %d bytes can never fit in SPOOL_MAX_BYTES=%d"
                            % (size, limit))
        full = "the spool %s is full (SPOOL_MAX_BYTES=%d, S3 is not taking events fast " \
               "enough)" % (self.where(), limit)
        if self.settings.SPOOL_FULL == "drop":
            self.dropped += 1
            raise SpoolFull("%s: event dropped, %d dropped so far" % (full, self.dropped))
        self.log.limited("spool full", self.log.warning, "%s: each write_data call waits up to "
                         "%g s for room, then takes its event all the same, so that NXLog's "
                         "flow control holds its inputs back" % (full, MAX_CALL_WAIT))
        delay = 0.01
        while self.bytes + size > limit:
            wait = min(delay, deadline - self.clock.monotonic())
            if wait <= 0:
                break
            self.lock.wait(wait)
            delay = min(delay * 2, 1.0)
        return deadline

    def _open(self, body_format, epoch):
        self.open_seq, self.next_seq = self.next_seq, self.next_seq + 1
        self.open_epoch, self.open_format = int(epoch), body_format
        self.open_fd = os.open(self._open_path(),
                               os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | NOFOLLOW,
                               0o600)
        self.open_since = self.clock.monotonic()
        self.lock.notify_all()  # the uploader now has an age limit to watch

    def _open_path(self):
        return os.path.join(self.folder, "%012d-%d.%s.open" % (
            self.open_seq, self.open_epoch, self.open_format))

    def _close_open(self):
        """Manifest first, then the rename: see the layout above. If the manifest cannot be
        written (a full disk), the batch stays open and nothing changed."""
        if self.settings.FSYNC == "batch":
            self.disk.fsync(self.open_fd)
        batch = Batch(self.folder, seq=self.open_seq, id=uuid.uuid4().hex,
                      format=self.open_format, epoch=self.open_epoch,
                      first=utc_text(self.open_epoch),
                      last=utc_text(_last_epoch(self.open_last, self.open_epoch)),
                      events=self.open_events, bytes=self.open_bytes)
        self.keys.assign(batch)
        self.save(batch)
        os.close(self.open_fd)
        os.replace(self._open_path(), batch.path("data"))
        self.closed[batch.seq] = batch
        self.closed_events += batch.events
        self.open_fd = self.open_since = None
        self.open_events = self.open_bytes = 0
        self.lock.notify_all()

    def _try_to_close(self):
        """Closes the open batch; False if the disk refused (it stays open, tried again)."""
        try:
            self._close_open()
            return True
        except OSError as exc:
            self.log.limited("cannot close", self.log.warning, "cannot close the batch being "
                             "filled in %s: %s; it stays open and closing is tried again"
                             % (self.where(), exc))
            return False

    # -- the uploaders' side --

    def next_batch(self, timeout):
        """Takes the oldest closed batch no other uploader thread has, closing the open one
        once it is BATCH_AGE old; waits up to TIMEOUT for one. None if there is none yet."""
        age = self.settings.BATCH_AGE
        with self.lock:
            deadline = self.clock.monotonic() + timeout
            while not self.stopping.is_set():
                retry_close = None
                if self.open_since is not None and \
                        self.clock.monotonic() - self.open_since >= age and \
                        not self._try_to_close():
                    retry_close = self.clock.monotonic() + RETRY_DELAYS[0]
                for seq, batch in self.closed.items():
                    if seq not in self.uploading:
                        self.uploading.add(seq)
                        return batch
                now = self.clock.monotonic()
                if now >= deadline:
                    return None
                wake = deadline if self.open_since is None else min(
                    deadline, retry_close or self.open_since + age)
                self.lock.wait(max(0.0, wake - now))
            return None

    def give_back(self, batch):
        """An uploader thread is done with BATCH for now: another may take it."""
        with self.lock:
            self.uploading.discard(batch.seq)
            self.lock.notify_all()

    def remove(self, batch):
        """S3 has BATCH: its files go, and so does what write_data may be waiting for (the
        events held while the disk was full are written now). The manifest of the batch with
        the latest key time becomes LAST_STORED."""
        os.unlink(batch.path("data"))
        with self.lock:
            if batch.key_epoch >= self.last_stored_epoch:
                os.replace(batch.path("json"), os.path.join(self.folder, LAST_STORED))
                self.last_stored_epoch = batch.key_epoch
            else:
                os.unlink(batch.path("json"))
            del self.closed[batch.seq]
            self.closed_events -= batch.events
            self.uploading.discard(batch.seq)
            self.bytes -= batch.bytes
            if self.held:
                self._write_held(deadline=0)
            self.lock.notify_all()

    def wake(self):
        """Wakes the uploader threads that wait for a batch, to see whether they stop."""
        with self.lock:
            self.lock.notify_all()

    def release(self):
        """Closes the spool's files without closing the open batch, as the end of the
        process would."""
        with self.lock:
            for fd in (self.open_fd, self.lock_fd):
                if fd is not None:
                    os.close(fd)
            self.open_fd = self.lock_fd = None

    def pending(self):
        """Events not in S3 yet, open batch and held ones included."""
        return self.depth()[1]

    def depth(self):
        """(batches, events, bytes, first event's time of the oldest, or None): what waits."""
        with self.lock:
            oldest = [batch.epoch for batch in itertools.islice(self.closed.values(), 1)]
            if self.open_fd is not None:
                oldest.append(self.open_epoch)
            return (len(self.closed) + (self.open_fd is not None),
                    self.closed_events + self.open_events + len(self.held), self.bytes,
                    min(oldest) if oldest else None)


# ---- Uploads ------------------------------------------------------------------------------

class TryLater(Exception):
    """An upload that failed for now; the batch stays in the spool for the next round."""


def _if_none_match(params, **kwargs):
    """The transfer manager cannot pass If-None-Match: this adds it to the requests that
    store an object, one PUT or the completion of a multipart upload."""
    params["IfNoneMatch"] = "*"


class Uploader(object):
    """Stores the spool's closed batches in S3, each exactly once: a conditional PUT
    (If-None-Match: *), a retried one recognised by its batch id, a key another writer took
    named again. UPLOAD_THREADS threads run it; a batch S3 does not take now stays with its
    thread for the back-off (SLEEP, RETRY_DELAYS), so that no other tries it again at once."""

    in_memory_upload = IN_MEMORY_UPLOAD
    transfer_config = TRANSFER_CONFIG

    def __init__(self, settings, spool, keys, client, clock, log, stopping):
        self.settings, self.spool, self.keys, self.client = settings, spool, keys, client
        self.clock, self.log, self.stopping = clock, log, stopping
        self.counts_lock = threading.Lock()
        self.stored = [0, 0, 0]  # objects, events and bytes (as sent) S3 has stored
        self.errors = collections.Counter()  # failed uploads by error code
        for operation in ("PutObject", "CompleteMultipartUpload"):  # see _if_none_match
            client.meta.events.register("provide-client-params.s3." + operation,
                                        _if_none_match,
                                        unique_id="nxlog-s3-if-none-match-" + operation)

    def run(self):
        """An uploader thread: uploads batches, oldest first, until the writer stops."""
        failures = 0
        while not self.stopping.is_set():
            batch = None
            try:
                batch = self.spool.next_batch(timeout=RETRY_DELAYS[-1])
                if batch is None:
                    continue
                sent = self.upload(batch)
                self.spool.remove(batch)
                self.spool.note_stored(batch)
                self._count_stored(batch, sent)
                failures = 0
                continue
            except TryLater as problem:
                self.report(problem)
                self.clock.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)],
                                 self.stopping)
                failures += 1
            except Exception:  # never let the thread die: the spool would only grow
                self.log.limited("uploader", self.log.error, "unexpected error in the "
                                 "uploader, retrying: %s" % traceback.format_exc())
                self.clock.sleep(RETRY_DELAYS[-1], self.stopping)
            if batch is not None:  # to be tried again, by whichever thread is free first
                self.spool.give_back(batch)

    def _count_stored(self, batch, sent):
        with self.counts_lock:
            self.stored[0] += 1
            self.stored[1] += batch.events
            self.stored[2] += sent

    def upload(self, batch):
        """Stores BATCH exactly once; the bytes sent. Raises TryLater if S3 does not take it
        now."""
        try:
            for _ in range(MAX_KEY_CONFLICTS):
                sent = self._stored(batch)
                if sent is not None:
                    return sent
                self.keys.assign_after_conflict(batch)
                self.spool.save(batch)
        except ClientError as exc:
            raise TryLater(batch, exc, error_code(exc)) from None
        except NoCredentialsError:
            raise TryLater(batch, NO_CREDENTIALS, "NoCredentialsError") from None
        except BotoCoreError as exc:
            raise TryLater(batch, exc, type(exc).__name__) from None
        raise TryLater(batch, "%d keys in a row were taken by other writers"
                       % MAX_KEY_CONFLICTS, "conflicts")

    def report(self, problem):
        batch, reason, code = problem.args
        with self.counts_lock:
            self.errors[code] += 1
        permanent = code in PERMANENT_ERRORS
        self.log.limited(code, self.log.error if permanent else self.log.warning,
                         "cannot store %s (%s) now: %s; %s" % (
                             quoted(self.settings.BUCKET, batch.key),
                             count(batch.events, "event"), reason,
                             "fix this: the events wait in the spool, and uploads go on by "
                             "themselves once S3 takes them" if permanent else
                             "the events wait in the spool and uploads will be tried again"))
        self.spool.note_error(batch.key, code, str(reason))

    def _stored(self, batch):
        """Puts BATCH at its key: the bytes sent once S3 holds it (0 if an earlier attempt,
        whose answer was lost, stored it); None if another object has that key."""
        try:
            return self._put(batch)
        except ClientError as exc:
            if error_code(exc) != "PreconditionFailed":
                raise
            return 0 if self._landed_before(batch) else None

    def _landed_before(self, batch):
        """Whether the object at BATCH's key is BATCH itself, stored by an earlier attempt."""
        head = self.client.head_object(Bucket=self.settings.BUCKET, Key=batch.key,
                                       **self.settings.owner())
        return head.get("Metadata", {}).get("nxlog-s3-batch") == batch.id

    def _put(self, batch):
        """Uploads BATCH to its key, only if that key is free (If-None-Match: *); the bytes
        sent."""
        arguments = self._object_arguments(batch)
        if batch.bytes <= self.in_memory_upload:
            body = io.BytesIO()
            self._encode(batch, body)
            self.client.put_object(Bucket=self.settings.BUCKET, Key=batch.key,
                                   Body=body.getvalue(), IfNoneMatch="*", **arguments)
            return body.tell()
        with tempfile.TemporaryFile(dir=self.spool.folder) as body:
            self._encode(batch, body)
            sent = body.tell()
            body.seek(0)
            self.client.upload_fileobj(body, self.settings.BUCKET, batch.key,
                                       ExtraArgs=arguments, Config=self.transfer_config)
            return sent

    def _object_arguments(self, batch):
        """Content-Type, Content-Encoding, metadata and the object options for BATCH."""
        settings = self.settings
        arguments = {"ContentType": CONTENT_TYPES[batch.format], "Metadata": {
            "nxlog-s3-version": OBJECT_VERSION, "nxlog-s3-format": batch.format,
            "nxlog-s3-compression": settings.COMPRESSION, "nxlog-s3-events": str(batch.events),
            "nxlog-s3-first": batch.first, "nxlog-s3-last": batch.last,
            "nxlog-s3-batch": batch.id, "nxlog-s3-times": "zoned"}}
        if settings.COMPRESSION != "none":
            arguments["ContentEncoding"] = settings.COMPRESSION
        if settings.STORAGE_CLASS:
            arguments["StorageClass"] = settings.STORAGE_CLASS
        if settings.SSE:
            arguments["ServerSideEncryption"] = settings.SSE
        if settings.SSE_KMS_KEY_ID:
            arguments["SSEKMSKeyId"] = settings.SSE_KMS_KEY_ID
        arguments.update(settings.owner())
        return arguments

    def _encode(self, batch, target):
        """BATCH's body as S3 stores it, into TARGET (a binary file)."""
        with open_nofollow(batch.path("data")) as source:
            if batch.format != "parquet":
                self._compress(source, target)
            elif _write_parquet(source, target, self.settings.PARQUET_COMPRESSION):
                self.log.limited("surrogates", self.log.warning, "%s holds text with lone "
                                 "surrogates, which Parquet (UTF-8 only) cannot: they are "
                                 "stored as U+FFFD; FORMAT=json keeps them" % quoted(
                                     self.settings.BUCKET, batch.key))

    def _compress(self, source, target):
        """Copies SOURCE to TARGET (binary files), compressed by COMPRESSION."""
        compression = self.settings.COMPRESSION
        if compression == "gzip":
            target = gzip.GzipFile(fileobj=target, mode="wb", compresslevel=6, mtime=0)
        elif compression == "zstd":
            target = zstandard.ZstdCompressor().stream_writer(target, closefd=False)
        while True:
            chunk = source.read(1024 * 1024)
            if not chunk:
                break
            target.write(chunk)
        if compression != "none":
            target.close()


# ---- Parquet ------------------------------------------------------------------------------

def _kind(value):
    """What a Parquet column of VALUE holds: a JSON value of a batch spooled for Parquet."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -2 ** 63 <= value < 2 ** 63 else "text"  # beyond int64: its digits
    if isinstance(value, dict):
        return "binary"
    if not isinstance(value, str):
        return "text"  # what no NXLog field is (a fraction, a null): its JSON
    if ZONED_TIME.match(value) and _micros(value) is not None:
        return "timestamp"
    return "string"


def _arrow_types(arrow):
    return {"bool": arrow.bool_(), "int": arrow.int64(), "binary": arrow.binary(),
            "timestamp": arrow.timestamp("us", tz="UTC"), "string": arrow.string()}


@functools.lru_cache(maxsize=4096)
def _micros(zoned):
    """Microseconds since the epoch of a zoned time; None if it is no such time."""
    epoch = instant(zoned)
    return None if epoch is None else int(round(epoch * 1000000))


def _as_text(value):
    """A value in a text column: a field seen with two kinds of value."""
    if value is None or isinstance(value, str):
        return value
    return value["base64"] if isinstance(value, dict) else json.dumps(value)


CONVERSIONS = {"timestamp": lambda value: None if value is None else _micros(value),
               "binary": lambda value: None if value is None else base64.b64decode(
                   value["base64"]),
               "text": _as_text}


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(values):
    """VALUES of a text column, each lone surrogate (which NXLog may hand over, and UTF-8,
    Parquet's only text, cannot hold) replaced by U+FFFD; and how many values had one."""
    result, replaced = [], 0
    for value in values:
        if isinstance(value, str) and LONE_SURROGATE.search(value):
            value, replaced = LONE_SURROGATE.sub("\ufffd", value), replaced + 1
        result.append(value)
    return result, replaced


def _rows(source):
    """The events of a spooled batch, a JSON object a line (read as text: json.loads would
    look for the encoding of every line)."""
    decode = json.JSONDecoder().decode
    text = io.TextIOWrapper(source, encoding="utf-8", errors="surrogatepass", newline="\n")
    try:
        for line in text:
            yield decode(line)
    finally:
        text.detach()  # SOURCE stays open, for the next pass


def _columns(source):
    """{field name: kind} of the first PARQUET_COLUMNS field names in SOURCE, in the order
    first seen, and whether it holds others; a field seen with two kinds of value is "text"
    (a string column its values are turned into), and a string field is looked at once: no
    later value can make it anything else."""
    kinds, more = collections.OrderedDict(), False
    for row in _rows(source):
        for name, value in row.items():
            kind = kinds.get(name)
            if kind == "string" or kind == "text":
                if kind == "string" and not isinstance(value, str):
                    kinds[name] = "text"
                continue
            if kind is None and len(kinds) == PARQUET_COLUMNS:
                more = True
                continue
            this = _kind(value)
            kinds[name] = this if kind is None or kind == this else "text"
    return kinds, more


def _more_column(kinds):
    """The name of the column for the fields beyond PARQUET_COLUMNS: none of KINDS'."""
    name = "more_fields"
    while name in kinds:
        name += "_"
    return name


def _more_fields(row, kinds):
    """ROW's fields that have no column of their own, as a JSON object (binary as base64
    text, as in JSON lines), or None."""
    more = {name: value["base64"] if isinstance(value, dict) else value
            for name, value in row.items() if name not in kinds}
    return json.dumps(more, separators=(",", ":")) if more else None


PLAIN_KINDS = {"string", "int", "bool", "timestamp"}  # what Arrow's JSON reader can parse


def _write_parquet(source, target, compression):
    """The events of a spooled batch (SOURCE, JSON lines) as Parquet in TARGET (a file it
    may rewrite): one row per event and a column per field name seen (strings, integers,
    booleans, timestamps in UTC, binary); a field seen with two kinds of value is text. Two
    passes over SOURCE, the first for the columns, so that memory holds PARQUET_ROWS events
    at a time. Returns how many text values had a lone surrogate replaced."""
    arrow = parquet_library()
    kinds, more = _columns(source)
    kinds = kinds or {"raw_event": "string"}  # events with no field are rows too
    types = _arrow_types(arrow)
    columns = [(name, types["string" if kind == "text" else kind])
               for name, kind in kinds.items()]
    more = _more_column(kinds) if more else None
    schema = arrow.schema(columns + [(more, arrow.string())] if more else columns,
                          metadata={MORE_FIELDS: more} if more else None)
    if not more and PLAIN_KINDS.issuperset(kinds.values()) and \
            hasattr(arrow.json, "open_json"):
        try:
            return _write_row_groups(arrow, target, schema, compression,
                                     _parsed_by_arrow(arrow, source, schema))
        except arrow.ArrowInvalid:  # a lone surrogate, a line longer than a block: the slow way
            target.seek(0)
            target.truncate()
    return _write_row_groups(arrow, target, schema, compression,
                             _converted_here(arrow, source, kinds, schema, more))


def _write_row_groups(arrow, target, schema, compression, groups):
    """Writes GROUPS, (table, lone surrogates replaced) pairs, each a row group; returns how
    many values had their lone surrogates replaced."""
    total = 0
    with arrow.parquet.ParquetWriter(target, schema, compression=compression) as writer:
        for table, replaced in groups:
            writer.write_table(table)
            total += replaced
    return total


def _parsed_by_arrow(arrow, source, schema):
    """SOURCE's events, PARQUET_ROWS at a time, parsed by Arrow's JSON reader: in C++, which
    leaves the interpreter to write_data meanwhile, four times as fast. For columns of plain
    kinds only, each value of the kind its column says (see _columns)."""
    source.seek(0)
    reader = arrow.json.open_json(
        source, read_options=arrow.json.ReadOptions(use_threads=False),
        parse_options=arrow.json.ParseOptions(explicit_schema=schema,
                                              unexpected_field_behavior="error"))
    waiting, rows = [], 0
    for batch in reader:
        waiting.append(batch)
        rows += batch.num_rows
        while rows >= PARQUET_ROWS:
            table = arrow.Table.from_batches(waiting, schema)
            yield table.slice(0, PARQUET_ROWS), 0
            rest = table.slice(PARQUET_ROWS)
            waiting, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield arrow.Table.from_batches(waiting, schema), 0


def _converted_here(arrow, source, kinds, schema, more=None):
    """SOURCE's events, PARQUET_ROWS at a time, decoded and converted in Python: binary and
    text columns, what Arrow's JSON reader refuses, and with MORE the fields beyond
    PARQUET_COLUMNS in that column."""
    source.seek(0)
    rows = _rows(source)
    while True:
        group = list(itertools.islice(rows, PARQUET_ROWS))
        if not group:
            return
        columns = {}
        for name, kind in kinds.items():
            values = [row.get(name) for row in group]
            convert = CONVERSIONS.get(kind)
            columns[name] = values if convert is None else list(map(convert, values))
        if more:
            columns[more] = [_more_fields(row, kinds) for row in group]
        replaced = 0
        try:
            table = arrow.Table.from_pydict(columns, schema=schema)
        except UnicodeEncodeError:  # rare: only then is every text value looked at
            for name, kind in kinds.items():
                if kind in ("string", "text"):
                    columns[name], some = _without_lone_surrogates(columns[name])
                    replaced += some
            table = arrow.Table.from_pydict(columns, schema=schema)
        yield table, replaced


# ---- The writer ---------------------------------------------------------------------------

class Writer(object):
    """One om_python instance: the spool, the keys and the uploader threads, built from
    SETTINGS. CLIENT, CLOCK and DISK are passed in by tests; by default a client from the
    standard AWS chain, the system's clock and the real file system."""

    def __init__(self, settings, client=None, clock=None, disk=None):
        self.settings = settings
        self.clock = clock or Clock()
        self.log = Log(self.clock)
        self.client = client or new_client(settings, settings.UPLOAD_THREADS)
        self.keys = Keys(settings, self.client, self.clock, self.log)
        self.encoder = Encoder(settings, self.log)
        self.stopping = threading.Event()
        self.spool = Spool(settings, self.keys, self.clock, self.log, disk or Disk(),
                           self.stopping)
        self.uploader = Uploader(settings, self.spool, self.keys, self.client, self.clock,
                                 self.log, self.stopping)
        self.metrics = Metrics(settings.METRICS_FILE, self.samples, self.clock, disk or Disk(),
                               self.log)
        self.threads = []
        self.record, self.append = self.encoder.record, self.spool.append  # the hot path

    def start(self, probe=None):
        """What NXLog's start of the module does: checks the spool's folder and the bucket
        (with PROBE, a client of one quick attempt by default), takes up what the spool
        holds and starts the uploads. Raises ConfigError for what can never work."""
        self.metrics.check()
        self.spool.open()
        check_bucket(self.settings, probe or probe_client(self.settings), self.log)
        self.spool.recover()
        self.threads = [threading.Thread(target=self.uploader.run, daemon=True,
                                         name="%s uploader %d" % (SCRIPT, number))
                        for number in range(1, self.settings.UPLOAD_THREADS + 1)]
        for thread in self.threads:
            thread.start()
        self.metrics.start()
        self.log.info(self.describe())
        return self

    def check(self, probe=None):
        """What start() checks, changing nothing in the bucket nor in the spool (a missing
        folder is not made, an open one not closed): what NXLog would log at start, and
        whether another writer uses the spool now."""
        self.metrics.check()
        in_use = self.spool.in_use()
        check_bucket(self.settings, probe or probe_client(self.settings), self.log)
        return self.describe() + ("; a running writer uses the spool now" if in_use else "")

    def describe(self):
        settings = self.settings
        return "events go to s3://%s/%s/ (%s, %s, compression %s), spool %s" % (
            settings.BUCKET, settings.SERVER,
            "batches of up to %d events, %d bytes or %g s" % (
                settings.BATCH_EVENTS, settings.BATCH_BYTES, settings.BATCH_AGE)
            if settings.BATCHING else "one object per event", settings.BODY_FORMAT,
            settings.COMPRESSION, self.spool.where())

    def write_data(self, event):
        """NXLog's write_data: returns once the event is in the spool on disk, within about
        MAX_CALL_WAIT whatever happens."""
        body_format, record = self.record(event)
        self.append(body_format, record, event.get_field("EventReceivedTime"))

    def stop(self):
        """Ends this instance as the end of its process would, open batch left as it is.
        NXLog never calls it (it has no shutdown hook); tests and programs that embed the
        script do."""
        self.stopping.set()
        self.spool.wake()
        for thread in self.threads:
            thread.join()
        self.metrics.stop()
        self.spool.release()

    def samples(self):
        """The writer's metrics, for METRICS_FILE (see Metrics)."""
        batches, events, size, oldest = self.spool.depth()
        with self.uploader.counts_lock:
            objects, stored, sent = self.uploader.stored
            errors = sorted(self.uploader.errors.items())
        labels = {"bucket": self.settings.BUCKET, "server": self.settings.SERVER}
        age = 0 if oldest is None else max(0, self.clock.time() - oldest)
        prefix = "nxlog_s3_writer_"
        samples = [
            ("events_total", "counter", "events write_data put in the spool", self.spool.taken),
            ("events_dropped_total", "counter", "events refused: SPOOL_FULL=drop with the "
             "spool or its disk full", self.spool.dropped),
            ("stored_objects_total", "counter", "objects S3 stored", objects),
            ("stored_events_total", "counter", "events in the objects S3 stored", stored),
            ("stored_bytes_total", "counter", "bytes of the objects S3 stored, as sent "
             "(compressed)", sent),
            ("spool_batches", "gauge", "batches in the spool, the one being filled included",
             batches),
            ("spool_events", "gauge", "events not in S3 yet", events),
            ("spool_bytes", "gauge", "bytes in the spool (uncompressed)", size),
            ("spool_oldest_event_age_seconds", "gauge", "age of the first event of the oldest "
             "batch in the spool; 0 when it is empty", age)]
        result = [(prefix + name, kind, summary, labels, value)
                  for name, kind, summary, value in samples]
        return result + [(prefix + "upload_errors_total", "counter", "failed uploads, by "
                          "error code", dict(labels, kind=code), number)
                         for code, number in errors]


def _start_under_nxlog():
    """Builds the writer from the settings at the top of this file and NXLOG_S3_*, and
    starts it; a setting that can never work keeps NXLog from starting, with one line."""
    try:
        return Writer(WriterSettings.of_script(globals(), __file__)).start()
    except ConfigError as exc:
        refuse_to_start(exc)


def _status_command(settings, arguments):
    """`status`: what the spool holds, read from its folder, also while NXLog runs."""
    status = spool_status(settings.SPOOL_DIR, time.time())
    if arguments.json:
        print(json.dumps(status, sort_keys=True))
        return 0
    print("spool %s%s" % (status["spool"], {None: " (no such folder yet)", True: " (in use by "
                          "a running writer)", False: ""}[status["in_use"]]))
    print("  waiting: %s closed, %s; %s, %s" % (
        count(status["closed_batches"], "batch", "batches"),
        "1 being filled" if status["open_batch"] else "none being filled",
        count(status["events"], "event"), count(status["bytes"], "byte")))
    if status["oldest_event"]:
        print("  oldest event: %s, %d s ago" % (status["oldest_event"],
                                               status["oldest_event_age"]))
    stored = status["last_stored"]
    print("  last stored: %s" % ("%r, its last event %s" % (stored["key"], stored["last"])
                                 if stored else "nothing yet"))
    if status["stored_lately"]:
        print("  stored lately, the latest last:")
    for stored in status["stored_lately"]:
        print("    %s %r, %s" % (stored["stored"], stored["key"], count(stored["events"],
                                                                        "event")))
    error = status["last_error"]
    print("  last upload error: %s" % ("%s %s: %s" % (error["time"], repr(error["key"]),
                                                      error["reason"])
                                       if error else "none"))
    return 0


def _json_file(path):
    """PATH's JSON object, or None if there is none (or not whole yet)."""
    try:
        with open_nofollow(path) as handle:
            value = json.loads(handle.read().decode())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _lines_in(path):
    """The whole lines in PATH, read a MiB at a time (a batch being filled may be large)."""
    lines = 0
    with open_nofollow(path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            lines += chunk.count(b"\n")
    return lines


def spool_status(folder, now):
    """What the spool FOLDER holds, read without taking it: a running writer may use it.
    Times are UTC, marked Z."""
    status = {"spool": os.path.abspath(folder), "closed_batches": 0, "events": 0, "bytes": 0,
              "open_batch": None, "oldest_event": None, "oldest_event_age": None,
              "last_stored": None, "stored_lately": [], "last_error": None, "in_use": None}
    if not os.path.isdir(folder):
        return status
    status["in_use"] = lock_held(os.path.join(folder, ".lock"))
    firsts = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if MANIFEST_NAME.match(name) and os.path.exists(path[:-5] + ".data"):
            manifest = _json_file(path) or {}
            status["closed_batches"] += 1
            status["events"] += manifest.get("events") or 0
            status["bytes"] += manifest.get("bytes") or 0
            firsts.append(manifest.get("epoch"))
        elif OPEN_NAME.match(name):
            size = os.path.getsize(path)
            events = _lines_in(path) if name.split(".")[1] in LINE_FORMATS else int(size > 0)
            status["open_batch"] = {"events": events, "bytes": size}
            status["events"] += events
            status["bytes"] += size
            firsts.append(int(name.split("-")[1].split(".")[0]))
    firsts = [epoch for epoch in firsts if isinstance(epoch, (int, float))]
    if firsts:
        status["oldest_event"] = utc_text(min(firsts))
        status["oldest_event_age"] = int(max(0, now - min(firsts)))
    stored = _json_file(os.path.join(folder, LAST_STORED))
    if stored:
        status["last_stored"] = {"key": stored.get("key"), "last": stored.get("last")}
    status["stored_lately"] = (_json_file(os.path.join(folder, LAST_KEYS)) or {}).get("keys", [])
    status["last_error"] = _json_file(os.path.join(folder, LAST_ERROR))
    return status


COMMANDS = {"check": ("make every start-up check NXLog would make (settings, spool folder, "
                      "bucket, credentials), writing nothing to the bucket",
                      lambda settings, arguments: check_command(Writer(settings), arguments),
                      ()),
            "status": ("show what the spool holds: batches, events, bytes, the oldest "
                       "event's age, the last key stored and the last upload error (read "
                       "from the spool folder, also while NXLog runs)", _status_command,
                       [JSON_OPTION])}

if __name__ == "__main__":
    sys.exit(run_command(sys.argv[1:], WriterSettings, globals(), __file__, COMMANDS))
instance = _start_under_nxlog()
write_data = instance.write_data
stop = instance.stop
