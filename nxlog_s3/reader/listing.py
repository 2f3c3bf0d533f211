"""Listing a server's new objects in key order: pages, late keys and sweeps."""

import calendar
import collections
import concurrent.futures
import email.utils

from nxlog_s3.common.objects import SCHEME_KEY, STATE_PREFIX, _second_of, utc_text
from nxlog_s3.common.runtime import SCRIPT
from nxlog_s3.common.s3 import quoted
from nxlog_s3.common.settings import _server
from nxlog_s3.reader.deadline import Deadline, TimeUp
from nxlog_s3.reader.position import Listed, _mark

REPORTED_BY_NAME = 20  # keys not readable named one by one in a call; the others counted
LANDING_MARGIN = 300  # seconds a sweep looks before the last one: clocks and slow uploads


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


class Listing(object):
    """Which keys to read next, for a server: the window of a poll, the re-listing of the
    horizon, the sweep of the whole prefix; keys that cannot be read are reported, once."""

    def __init__(self, settings, client, checkpoint, fetcher, clock, log):
        self.settings, self.client, self.checkpoint = settings, client, checkpoint
        self.fetcher, self.clock, self.log = fetcher, clock, log
        self.unreported = []  # (key, why) found not readable in this call, to be logged
        self.known_servers = None  # with SERVER=*: what the last listing of them found
        self.listing_servers = None  # the future of the listing of them under way

    def _paginate(self, prefix, start_after=None, delimiter=None):
        arguments = {"Bucket": self.settings.BUCKET, "Prefix": prefix,
                     "PaginationConfig": {"PageSize": self.settings.MAXKEYS}}
        if start_after:
            arguments["StartAfter"] = start_after
        if delimiter:
            arguments["Delimiter"] = delimiter
        return self.client.get_paginator("list_objects_v2").paginate(**arguments)

    def keys_of(self, prefix):
        """Every key under PREFIX, however long S3 takes."""
        pages, keys, unbounded = Pages(self, prefix, None), [], Deadline(self.clock)
        for entries in iter(lambda: pages.next(unbounded), None):
            keys += [entry[0] for entry in entries]
        return keys

    def servers(self, deadline, relist=True):
        """The servers to read: SERVER, or with * every first segment of a key, listed anew
        at every call (unless not RELIST, once listed) by a fetch thread and waited for until
        DEADLINE; while S3 is slower, the servers the last listing found (None before the
        first)."""
        if self.settings.SERVER != "*":
            return self.settings.SERVER
        if not relist and self.known_servers is not None and self.listing_servers is None:
            return self.known_servers
        if self.listing_servers is None:
            self.listing_servers = self.fetcher.submit(self.first_segments)
        if deadline.wait([self.listing_servers]):
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
        REPORT(key, why)), MOVE_PREFIX and the readers' own STATE_PREFIX apart."""
        names, report = [], report or self.report_other_key
        for prefix in prefixes:
            if not prefix.endswith("/"):
                report(prefix, "it lies at the top of the bucket, under no server")
            elif prefix not in (self.settings.MOVE_PREFIX, STATE_PREFIX):
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
        return ListingPass(self, server, position.start_after(server, position.window_start()),
                           keep=lambda item: not position.done(item))

    def late(self, server, position, sweep):
        """What the re-listing reads (see LatePass), a SWEEP listing the whole prefix."""
        return LatePass(self, server, position, sweep)

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


class Pages(object):
    """The pages of one listing of PREFIX after START_AFTER (with DELIMITER, its common
    prefixes), each asked of S3 by a fetch thread one page ahead. S3's time at each page is
    appended to DATES, if given."""

    def __init__(self, listing, prefix, start_after, delimiter=None, dates=None):
        self.fetcher, self.clock, self.dates = listing.fetcher, listing.clock, dates
        self.pages = iter(listing._paginate(prefix, start_after, delimiter))
        self.coming = self.fetcher.submit(next, self.pages, None)

    def next(self, deadline):
        """The next page's (key, size, when stored, ETag) entries (a common prefix: size
        None); None once the listing is over. TimeUp if S3 has not sent it by DEADLINE: it
        is waited for again at the next call."""
        try:
            page = self.coming.result(deadline.left())
        except concurrent.futures.TimeoutError:
            raise TimeUp() from None
        if page is None:
            return None
        self.coming = self.fetcher.submit(next, self.pages, None)
        if self.dates is not None:
            self.dates.append(_server_time(page, self.clock))
        return [(item["Prefix"], None, None, None) for item in page.get("CommonPrefixes", ())] \
            + [(item["Key"], item["Size"], calendar.timegm(item["LastModified"].utctimetuple()),
                item.get("ETag", "")) for item in page.get("Contents", ())]


class ListingPass(object):
    """The objects of SERVER after START_AFTER as Listed, in reading order, those KEEP(item)
    is true for: a second is sorted by counter once all of it was listed, even across two
    pages. Keys off the scheme, or with a date or time that cannot be, are reported once (or
    given to REPORT(key, why)) and passed. A pass may take several calls: it keeps its place."""

    def __init__(self, listing, server, start_after, dates=None, report=None, keep=None):
        self.listing, self.report = listing, report or listing.report_other_key
        self.keep = keep or (lambda item: True)
        self.pages = Pages(listing, server + "/", start_after, dates=dates)
        self.group, self.second = [], None  # the keys of the second being listed
        self.ready = collections.deque()  # objects of the seconds listed whole
        self.over = False

    def next(self, deadline):
        """The next object; None once the listing is over. TimeUp if S3 has not sent the
        next page by DEADLINE, or DEADLINE passed over a page that held nothing to read."""
        while not self.ready:
            if self.over:
                return None
            entries = self.pages.next(deadline)
            if entries is None:
                self._second_listed()
                self.over = True
                continue
            for entry in entries:
                this = _second_of(entry[0])
                if self.group and this != self.second:
                    self._second_listed()
                self.group.append(entry)
                self.second = this
            if not self.ready:
                deadline.check()
        return self.ready.popleft()

    def _second_listed(self):
        items = self.listing._scheme_items(sorted(self.group, key=_counter_order), self.report)
        self.ready.extend(item for item in items if self.keep(item))
        self.group = []


class LatePass(object):
    """What the re-listing reads: the objects of SERVER not read yet between LATE_HORIZON
    and LOOKBACK behind the newest one read; those that fell behind the horizon since the
    last sweep are reported, once. A SWEEP lists the whole prefix: what S3 stored behind
    that since the last sweep landed too late for any listing to read it, and is reported.
    The horizon moves on at a sweep only (at every re-listing if there are none), so that
    nothing lands between what the sweeps and the re-listings look at."""

    def __init__(self, listing, server, position, sweep):
        self.listing, self.position, self.sweep = listing, position, sweep
        self.horizon, self.end = position.horizon(), position.window_start()
        self.keep_from = position.keep_from()
        self.dates = []
        self.items = ListingPass(listing, server, position.start_after(
            server, None if sweep else self.keep_from), self.dates, keep=self._read)
        self.over = False

    def next(self, deadline):
        """The next object to read; None once the pass is over. TimeUp as ListingPass."""
        if self.over:
            return None
        item = self.items.next(deadline)
        if item is None or item.epoch >= self.end:
            self._finish()
            return None
        return item

    def _read(self, item):
        """Whether ITEM is read; one behind the horizon is reported or set aside."""
        position, settings = self.position, self.listing.settings
        if item.epoch >= self.end:
            return True  # where the pass ends (see next)
        if item.epoch >= self.horizon:
            return not position.done(item)
        if item.epoch < self.keep_from:
            self.listing._report_landed_behind(position, item)
        elif not position.done(item):
            why = "it landed more than LATE_HORIZON=%d s behind the newest object read" \
                % settings.LATE_HORIZON
            self.listing.log.warning("%s is not read: %s; read it by hand, or raise "
                                     "NXLOG_S3_LATE_HORIZON" % (
                                         quoted(settings.BUCKET, item.key), why))
            position.put_aside(item.key, why)
            position.mark(item)
        return False

    def _finish(self):
        self.over = True
        if self.sweep:
            self.position.swept_at = self.dates[0] if self.dates else \
                self.listing.clock.time()
        if self.sweep or not self.listing.settings.SWEEP_INTERVAL:
            self.position.finish_late(self.horizon)
