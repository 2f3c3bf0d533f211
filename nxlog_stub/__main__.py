"""python -m nxlog_stub CONF: runs the routes of an nxlog.conf until its inputs are idle.

As NXLog does, it writes its pid to PidFile (and refuses to start if it cannot), appends its
log to LogFile (and echoes it to stderr, unless --quiet), keeps im_file positions in CacheDir,
runs with SpoolDir as its working directory, where relative paths in scripts land, and logs
`nxlog-ce-3.1.15 started` once its modules have started (after the scripts' own start lines;
never where a script ended the process at its start).

Exit status: 0 once the inputs are idle, as NXLog's at a stop, whatever its modules logged
(a script that raised at import included); death by SIGSEGV (-11) where NXLog dies of it (a
field name that NXLog cannot take); 1 if it cannot start (its PidFile, LogFile or
SpoolDir cannot be used); 2 for a conf it cannot run; a script's own status where it ends
the process at import (os._exit), as it ends NXLog.
"""

import argparse
import os
import signal
import sys
import time

from . import api
from .conf import LOG_LEVELS, ConfError, parse
from .runner import LoadError, Runner

STARTED = "nxlog-ce-3.1.15 started"  # NXLog's line once its modules started (none if one
                                    # ended the process at its start)


def _define(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("--define takes NAME=VALUE")
    return name, value


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m nxlog_stub", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("conf", help="the nxlog.conf to run")
    parser.add_argument("--define", "-D", type=_define, action="append", default=[],
                        metavar="NAME=VALUE", help="replace the value of a `define` in CONF")
    parser.add_argument("--idle", type=float, default=2.0, metavar="SECONDS",
                        help="stop once no input produced an event for this long (default 2)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where im_file keeps its SavePos positions (default: the conf's "
                             "CacheDir, else the working directory)")
    parser.add_argument("--legacy-api", action="store_true",
                        help="offer the older API names (new_logdata, add_read_event, get_names)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="do not echo NXLog's log lines to stderr")
    return parser.parse_args(argv)


class Logging(object):
    """NXLog's log lines at LEVEL or above, echoed to stderr and appended to LOG_FILE."""

    def __init__(self, level, log_file, echo):
        self.lowest = LOG_LEVELS.index(level.upper())
        self.handle = open(log_file, "a", encoding="utf-8") if log_file else None
        self.echo = echo

    def __call__(self, level, message):
        if LOG_LEVELS.index(level) < self.lowest:
            return
        line = "%s %s %s\n" % (api.local_time_string(), level, message)
        if self.echo:
            sys.stderr.write(line)
        if self.handle:
            self.handle.write(line)
            self.handle.flush()


class StartError(Exception):
    """What keeps NXLog from starting before it loads a module."""


def _write_pid(path):
    try:
        with open(path, "w") as handle:
            handle.write("%d\n" % os.getpid())
    except OSError as exc:
        raise StartError("couldn't open pidfile %s: %s" % (path, exc.strerror)) from None


def _start(config, args):
    """What NXLog does before it loads its modules: its log, pid file and working directory.
    Returns the pid file's absolute path (or None) and the folder for im_file positions."""
    settings = config.globals
    try:
        api.echo = Logging(settings.get("loglevel", "INFO"), settings.get("logfile"),
                           echo=not args.quiet)
    except OSError as exc:
        raise StartError("couldn't open logfile %s: %s" % (settings["logfile"],
                                                           exc.strerror)) from None
    pid_file = settings.get("pidfile") and os.path.abspath(settings["pidfile"])
    if pid_file:
        _write_pid(pid_file)
    cache_dir = os.path.abspath(args.cache_dir or settings.get("cachedir", "."))
    if "spooldir" in settings:
        try:
            os.chdir(settings["spooldir"])
        except OSError as exc:
            raise StartError("cannot use SpoolDir %s: %s" % (settings["spooldir"],
                                                             exc.strerror)) from None
    return pid_file, cache_dir


def main(argv=None):
    args = _arguments(argv)
    if args.legacy_api:
        api.set_flavour(api.LEGACY)
    try:
        config = parse(args.conf, dict(args.define))
    except ConfError as exc:
        sys.stderr.write("nxlog_stub: %s\n" % exc)
        return 2
    try:
        pid_file, cache_dir = _start(config, args)
    except StartError as exc:
        sys.stderr.write("nxlog_stub: %s\n" % exc)
        return 1
    try:
        runner = Runner(config, cache_dir=cache_dir, idle=args.idle)
        api.log_info(STARTED)  # as NXLog logs it: once its modules have started
        started = time.monotonic()
        runner.run()
    except (ConfError, LoadError) as exc:
        sys.stderr.write("nxlog_stub: %s\n" % exc)
        return 2
    except api.Crash:  # NXLog logs nothing and dies of SIGSEGV
        os.kill(os.getpid(), signal.SIGSEGV)
    finally:
        if pid_file and os.path.exists(pid_file):
            os.unlink(pid_file)
    print("nxlog_stub: ran %s for %.1f s" % (args.conf, time.monotonic() - started))
    for line in runner.report():
        print("  " + line)
    print("  %d errors logged" % len(api.logged("ERROR")))
    return 0  # as NXLog's at a stop, whatever its modules logged


if __name__ == "__main__":
    sys.exit(main())
