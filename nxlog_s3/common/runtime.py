"""What the parts run on, passed in so tests can pass others: the clock, the log, the disk."""

import os
import sys
import tempfile
import threading
import time

from nxlog_s3.common.optional import nxlog

SCRIPT = "nxlog-s3"  # in a generated script: its file's name (s3_write), see tools/amalgamate.py
VERSION = "0.2.0"  # the release: --version, the start's log line, each object's metadata
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
    every EVERY seconds (by default a minute), with a count of the times not logged."""

    def __init__(self, clock, every=60):
        self.clock, self.every = clock, every
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
            if when is not None and now - when < self.every:
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


def count(number, noun, plural=None):
    """'1 event', '2 events'."""
    return "%d %s" % (number, noun if number == 1 else plural or noun + "s")
