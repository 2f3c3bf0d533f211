"""`audit`: objects, events and bytes per server and day, and what is wrong with them."""

import functools
import sys

from botocore.exceptions import ClientError

from nxlog_s3.common.errors import MISSING, kind_of, object_failure
from nxlog_s3.common.objects import (
    METADATA_BATCH,
    METADATA_EVENTS,
    METADATA_FORMAT,
    instant,
    second_prefix,
    utc_text,
)
from nxlog_s3.common.runtime import EXIT_WARNED, count
from nxlog_s3.reader.commands import (
    Between,
    _print_json,
    _range_text,
    _servers_to_read,
    in_order,
    prefix_url,
    servers_without_objects,
)
from nxlog_s3.reader.position import _ranges
from nxlog_s3.reader.replay import _reversed

# -- audit --

class Audit(object):
    """What `audit` finds in the objects of the servers it is given: per server and day the
    objects, events and bytes; counters missing inside a second; a batch stored under two
    keys; keys off the scheme; with DEEP, objects that do not decode (or hold another count
    of events than their metadata says). Without DEEP, it reads the listing and each
    object's metadata (a HEAD request), no body."""

    def __init__(self, parts, deep):
        self.parts, self.deep = parts, deep
        self.days = {}  # server -> day -> {"objects", "events", "bytes", "unknown_events"}
        self.problems = []

    def off_scheme(self, key, why):
        self.problems.append({"problem": "off_scheme", "key": key, "why": why})

    def server(self, server, start, end):
        batches = {}  # batch id -> the first key it was found under
        second, counters = None, set()
        items = Between(self.parts, server, start, end, self.off_scheme)
        for item, future in in_order(self.parts, items, functools.partial(
                self.parts.fetcher.submit, self._look_at)):
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
            batch = metadata.get(METADATA_BATCH)
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
        settings = self.parts.settings
        try:
            if not self.deep:
                head = self.parts.client.head_object(Bucket=settings.BUCKET, Key=item.key)
                return head.get("Metadata", {}), _events_in(head.get("Metadata", {}),
                                                            settings), None
            response = self.parts.fetcher.stream(item.key)
        except ClientError as exc:
            if kind_of(exc) == MISSING:
                return None, None, None
            raise
        metadata = response.get("Metadata", {})
        said = _events_in(metadata, settings)
        try:
            events = sum(1 for _ in self.parts.decoder.events(item.key, response))
        except Exception as exc:  # whatever an object makes happen is that object's alone
            return metadata, said, {"problem": "undecodable", "why": object_failure(exc)}
        finally:
            response["Body"].close()
        if said is not None and said != events:
            return metadata, events, {"problem": "miscounted", "why": "its metadata says %s, "
                                      "it holds %s" % (count(said, "event"),
                                                       count(events, "event"))}
        return metadata, events, None

    def _count(self, server, item, events):
        day = self.days.setdefault(server, {}).setdefault(item.second[:10], {
            "objects": 0, "events": 0, "bytes": 0, "unknown_events": 0, "hours": [0] * 24})
        day["objects"] += 1
        day["bytes"] += item.size
        if events is None:
            day["unknown_events"] += 1
        else:
            day["events"] += events
            day["hours"][int(item.second[11:13])] += events  # by the key's hour

    def _check_counters(self, server, second, counters):
        """The counters of SECOND run from 1 with no gap, as the writers give them."""
        missing = _gaps(counters)
        if missing:
            self.problems.append({
                "problem": "missing", "key": "%s.%s" % (second_prefix(server, second), missing),
                "why": "that second holds the counters %s: the others were deleted, or never "
                       "stored" % _ranges(counters)})


BAR_LEVELS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"  # ▁ to █, an eighth apart
NO_EVENTS = "\u00b7"  # an hour of the range with no event: a gap plain to see
ASCII_LEVELS, ASCII_NO_EVENTS = "12345678", "."  # where stdout cannot show blocks


def _bar_characters():
    """(the levels, the gap) of the hour bars: blocks, or digits (eighths) where stdout
    cannot show them."""
    try:
        BAR_LEVELS.encode(sys.stdout.encoding or "ascii")
        return BAR_LEVELS, NO_EVENTS
    except (UnicodeError, LookupError):
        return ASCII_LEVELS, ASCII_NO_EVENTS


def _hours_line(characters, outside, day, hours, most):
    """DAY's events per hour as one of CHARACTERS' levels each (see _bar_characters),
    scaled to MOST (the server's busiest hour): a gap is their gap character, an hour
    outside the audit's range (OUTSIDE(day, hour)) a blank."""
    levels, none = characters

    def block(hour, events):
        if events:
            return levels[max(0, -(-events * len(levels) // most) - 1)]
        return " " if outside(day, hour) else none
    return "".join(block(hour, events) for hour, events in enumerate(hours))


def _hours_outside(parts, start, end):
    """Whether an hour of a day (as the keys write it) lies outside START..END (epochs or
    None), or in the future: no event could be there."""
    now = parts.clock.time()

    def outside(day, hour):
        try:
            first = parts.checkpoint.seconds.epoch("%s/%02d.00.00" % (day, hour))
        except ValueError:  # an hour that local time skips
            return True
        return first > now or (end is not None and first >= end) or (
            start is not None and first + 3600 <= start)
    return outside


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
    if METADATA_EVENTS in metadata:
        try:
            return int(metadata[METADATA_EVENTS])
        except ValueError:
            return None
    batch = metadata.get(METADATA_FORMAT) in ("jsonl", "parquet")
    return None if batch or settings.RAW_LINES else 1


PROBLEM_NAMES = {"missing": "missing", "duplicate": "stored twice", "off_scheme":
                 "off the scheme", "undecodable": "undecodable", "miscounted": "miscounted"}


def _audit_command(parts, arguments):
    """`audit`: per server and day what the bucket holds, and every problem found; exits
    EXIT_WARNED when there is one."""
    if _reversed(arguments):
        return 2
    audit = Audit(parts, arguments.deep)
    servers = _servers_to_read(parts, audit.off_scheme)
    for server in servers:
        audit.server(server, arguments.start, arguments.end)
    settings = parts.settings
    result = {"bucket": settings.BUCKET, "deep": arguments.deep,
              "from": None if arguments.start is None else utc_text(arguments.start),
              "to": None if arguments.end is None else utc_text(arguments.end),
              "looked_at": [{"server": server, "prefix": prefix_url(settings, server)}
                            for server in servers],
              "servers": audit.days, "problems": audit.problems,
              "without_objects": servers_without_objects(parts, [
                  server for server in servers if server not in audit.days])}
    if arguments.json:
        _print_json(result)
    elif arguments.by == "hour":
        _print_audit(result, functools.partial(_hours_line, _bar_characters(), _hours_outside(
            parts, arguments.start, arguments.end)), "hour 0 to 23 (%s)" % (
                "UTC" if settings.KEY_TIME == "utc" else "this host's zone"))
    else:
        _print_audit(result)
    if settings.SERVER == "*" and not servers:
        parts.log.warning("no server's objects in s3://%s/: is the bucket right?"
                          % settings.BUCKET)
    return EXIT_WARNED if audit.problems or result["without_objects"] or not servers else 0


def _print_audit(result, hours_line=None, hours_title=None):
    """The audit as text: per server and day its figures, or with HOURS_LINE (--by hour)
    a bar of its events per hour and their sum; then every problem."""
    prefixes = [looked["prefix"] for looked in result["looked_at"]]
    print("%s, %s, %s" % (", ".join(prefixes) or "s3://%s/ (no server in it)"
                          % result["bucket"], _range_text(
        instant(result["from"]), instant(result["to"])), "every object decoded" if
        result["deep"] else "listing and metadata (--deep decodes every object)"))
    print("%-20s %-10s %s" % ("server", "day", "%-24s %12s" % (hours_title, "events")
                              if hours_line else "%10s %12s %14s" % ("objects", "events",
                                                                    "bytes")))
    for server, days in sorted(result["servers"].items()):
        most = max(max(figures["hours"]) for figures in days.values())
        for day, figures in sorted(days.items()):
            events = figures["events"] if not figures["unknown_events"] else \
                "%d+?" % figures["events"]
            print("%-20s %-10s %s" % (server, day, "%s %12s" % (
                hours_line(day, figures["hours"], most), events) if hours_line else
                "%10d %12s %14d" % (figures["objects"], events, figures["bytes"])))
    for server in (looked["server"] for looked in result["looked_at"]):
        if server not in result["servers"]:
            print("%-20s %s" % (server, "no object at all" if server in
                                result["without_objects"] else "no object in this range"))
    print("%s%s" % (count(len(result["problems"]), "problem"),
                    ":" if result["problems"] else ""))
    for problem in result["problems"]:
        print("  %-14s %r: %s" % (PROBLEM_NAMES[problem["problem"]], problem["key"],
                                  problem["why"]))
