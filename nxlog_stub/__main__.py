"""python -m nxlog_stub CONF: runs the routes of an nxlog.conf until its inputs are idle.

Exit status: 0 once the inputs are idle, as NXLog's at a stop, whatever its modules logged
(a script that raised at import included); 2 for a conf it cannot run; a script's own status
where it ends the process at import (os._exit), as it ends NXLog."""

import argparse
import sys
import time

from . import api
from .conf import ConfError, parse
from .runner import LoadError, Runner


def _define(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("--define takes NAME=VALUE")
    return name, value


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m nxlog_stub", description=__doc__)
    parser.add_argument("conf", help="the nxlog.conf to run")
    parser.add_argument("--define", "-D", type=_define, action="append", default=[],
                        metavar="NAME=VALUE", help="replace the value of a `define` in CONF")
    parser.add_argument("--idle", type=float, default=2.0, metavar="SECONDS",
                        help="stop once no input produced an event for this long (default 2)")
    parser.add_argument("--cache-dir", default=".", metavar="DIR",
                        help="where im_file keeps its SavePos positions (NXLog's CacheDir)")
    parser.add_argument("--legacy-api", action="store_true",
                        help="offer the older API names (new_logdata, add_read_event, get_names)")
    parser.add_argument("--quiet", "-q", action="store_true", help="do not echo NXLog's log lines")
    return parser.parse_args(argv)


def _echo(level, message):
    sys.stderr.write("%s %s %s\n" % (api.local_time_string(), level, message))


def main(argv=None):
    args = _arguments(argv)
    if args.legacy_api:
        api.set_flavour(api.LEGACY)
    if not args.quiet:
        api.echo = _echo
    try:
        config = parse(args.conf, dict(args.define))
        runner = Runner(config, cache_dir=args.cache_dir, idle=args.idle)
    except (ConfError, LoadError) as exc:
        sys.stderr.write("nxlog_stub: %s\n" % exc)
        return 2
    started = time.monotonic()
    runner.run()
    print("nxlog_stub: ran %s for %.1f s" % (args.conf, time.monotonic() - started))
    for line in runner.report():
        print("  " + line)
    print("  %d errors logged" % len(api.logged("ERROR")))
    return 0  # as NXLog's at a stop, whatever its modules logged


if __name__ == "__main__":
    sys.exit(main())
