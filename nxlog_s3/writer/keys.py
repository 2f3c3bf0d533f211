"""Keys: each object's SERVER/YYYY-MM-DD/HH.MM.SS.N, never one used already."""

import collections
import os
import threading
import time

from nxlog_s3.common.objects import (
    COMPRESSION_SUFFIXES,
    FORMAT_SUFFIXES,
    SCHEME_KEY,
    SECOND_FORMAT,
    key_second,
    scheme_key,
    second_prefix,
    utc_text,
)
from nxlog_s3.writer.encode import _event_epoch

REMEMBERED_SECONDS = 4096  # seconds whose last counter is kept in memory


class Keys(object):
    """Names batches: SERVER/YYYY-MM-DD/HH.MM.SS.N, the second of a batch's first event
    (this host's clock for a time it cannot trust), never before a key it gave already, and
    N past every counter it gave (or, after a conflict, found) in that second. What it must
    remember across restarts is in the manifests of the spool (see SpoolFiles)."""

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
        return second_prefix(self.settings.SERVER, time.strftime(SECOND_FORMAT, stamp))

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
            batch.key = scheme_key(second, counter, self.suffix(batch.format))

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
                if match and key_second(match) == second:
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
                self._taken(key_second(match), int(match.group(3)))
