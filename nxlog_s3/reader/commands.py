"""What the reader's commands share: time ranges, servers, progress."""

import argparse
import json
import re
import time

from botocore.exceptions import BotoCoreError, ClientError

from nxlog_s3.common.errors import error_text
from nxlog_s3.common.objects import instant, second_prefix, utc_text
from nxlog_s3.common.runtime import NXLOG, SCRIPT, count
from nxlog_s3.common.s3 import check_bucket
from nxlog_s3.common.settings import default_server
from nxlog_s3.reader.deadline import Deadline
from nxlog_s3.reader.fetch import Round
from nxlog_s3.reader.listing import ListingPass
from nxlog_s3.reader.parts import Parts

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


class Between(object):
    """The objects of SERVER keyed from START to before END (epochs; None: no bound) that
    KEEP(item) is true for, as Listed in reading order, however long S3 takes: a listing
    pass (see ListingPass) for the PARTS of a command. Keys off the scheme are reported (or
    given to REPORT)."""

    def __init__(self, parts, server, start, end, report=None, keep=None):
        start_after = None if start is None else second_prefix(
            server, parts.checkpoint.seconds.text(start))
        self.items = ListingPass(parts.listing, server, start_after, report=report, keep=keep)
        self.end, self.unbounded = end, Deadline(parts.clock)

    def next(self, deadline):
        item = self.items.next(deadline)
        return None if item is None or self.end is not None and item.epoch >= self.end \
            else item

    def __iter__(self):
        return iter(lambda: self.next(self.unbounded), None)


def in_order(parts, items, begin=None):
    """(item, BEGIN(item)) for each of ITEMS (a listing pass) in order, as the reader takes
    them (see Round): BEGIN starts an item's work in the fetch threads (by default a small
    object's fetch), FETCH_THREADS items ahead."""
    work, unbounded = Round(items, parts.fetcher, begin=begin), Deadline(parts.clock)
    return iter(lambda: work.next(unbounded), None)


def _servers_to_read(parts, report=None):
    """SERVER, or with * every server in the bucket (other first segments REPORTed)."""
    if parts.settings.SERVER != "*":
        return parts.settings.SERVER
    return parts.listing.server_names(parts.listing.first_segments(), report)


def prefix_url(settings, server):
    return "s3://%s/%s/" % (settings.BUCKET, server)


def servers_without_objects(parts, servers):
    """Those of SERVERS whose prefix holds no object at all (a LIST request of one key
    each), each named in a warning: a misspelled server, or the default (this host's name)
    where another was meant, must not pass for an empty range."""
    settings, empty = parts.settings, []
    for server in servers:
        listed = parts.client.list_objects_v2(Bucket=settings.BUCKET, Prefix=server + "/",
                                              MaxKeys=1)
        if not listed.get("Contents"):
            empty.append(server)
            parts.log.warning("no object at all under %s: is the server's name right?%s" % (
                prefix_url(settings, server), " (none was given, so SERVER is this host's "
                "name: --server NAME gives another)" if server == default_server() else ""))
    return empty


def _unreported(key, why):
    """Keys off the scheme, for what reports none (a replay reads a range of the scheme)."""


def _print_json(value):
    print(json.dumps(value, sort_keys=True))


def _s3_command(command):
    """COMMAND(parts, arguments) run on the reader's Parts, built from the settings: a
    missing bucket exits as NXLog's start would, S3 failing midway with EXIT_S3, and the
    fetch threads end with it."""
    def run(settings, arguments):
        parts = Parts(settings)
        try:
            check_bucket(settings, parts.client, parts.log)
            return command(parts, arguments)
        except (BotoCoreError, ClientError) as exc:
            NXLOG.log_error("%s: cannot read s3://%s/: %s" % (SCRIPT, settings.BUCKET,
                                                              error_text(exc)))
            return EXIT_S3
        finally:
            parts.stop()
    return run


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
