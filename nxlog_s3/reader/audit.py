"""`audit`: objects, events and bytes per server and day, and what is wrong with them."""

import functools

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
from nxlog_s3.reader.commands import Between, _print_json, _range_text, _servers_to_read, in_order
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
                "problem": "missing", "key": "%s.%s" % (second_prefix(server, second), missing),
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
    for server in _servers_to_read(parts, audit.off_scheme):
        audit.server(server, arguments.start, arguments.end)
    result = {"bucket": parts.settings.BUCKET, "deep": arguments.deep,
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
