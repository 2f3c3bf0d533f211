"""The code s3_write.py and s3_read.py both need, in one place.

Each script must stay one drop-in file, so `make scripts` writes the part of this file
between the two markers into both, and tests/test_shared_code.py fails when a script's copy
differs. Edit it here, never in a script. It reads no global of the script that holds it:
what it needs comes in as arguments (the settings, a clock, a client).
"""

import argparse
import base64
import collections
import datetime
import functools
import os
import re
import socket
import stat
import sys
import tempfile
import threading
import time

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
