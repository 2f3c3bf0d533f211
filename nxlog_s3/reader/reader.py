"""Reader: one im_python instance, posting each object's events in key order."""

import collections
import io
import itertools
import traceback

from botocore.exceptions import BotoCoreError, ClientError

from nxlog_s3.common.errors import (
    DECODE_ERRORS,
    UndecodableObject,
    error_code,
    error_text,
    object_failure,
)
from nxlog_s3.common.metrics import Metrics
from nxlog_s3.common.runtime import VERSION
from nxlog_s3.common.s3 import check_bucket, new_client, probe_client, quoted
from nxlog_s3.reader.after_read import AfterRead
from nxlog_s3.reader.checkpoint import CheckpointError
from nxlog_s3.reader.deadline import Deadline, TimeUp
from nxlog_s3.reader.decode import zoned_times
from nxlog_s3.reader.fetch import WHOLE_OBJECT, OpenObject, Round, StreamedObject
from nxlog_s3.reader.fields import NXLOG_MAX_TEXT, FieldGuard
from nxlog_s3.reader.lines import DecodeBudget
from nxlog_s3.reader.notify import Notifications, Polls
from nxlog_s3.reader.parts import Parts
from nxlog_s3.reader.report import reader_samples, report_place
from nxlog_s3.reader.shared import LeaseLost

MORE_WAITING_DELAY = 0.01  # seconds to the next call when a call stopped at its bound
CLOCK_EVERY = 1000  # events between two looks at the clock inside a streamed object


def _schedule(module, delay):
    set_timer = getattr(module, "set_read_timer", None) or module.add_read_event
    set_timer(delay)


class Reader(object):
    """One im_python instance: each read_data call posts the events of the next objects, in
    key order, within a budget of objects and time, and saves the checkpoint after each.
    Built from SETTINGS; tests pass in other collaborators: by default a CLIENT from the
    standard AWS chain, the system's CLOCK, the real file system (DISK), NXLog's LOG, objects
    up to WHOLE_OBJECT bytes fetched whole, a look at the clock every CLOCK_EVERY events
    inside an object, and with NOTIFY_QUEUE an SQS client (SQS) from the same chain."""

    more_waiting_delay = MORE_WAITING_DELAY

    def __init__(self, settings, client=None, clock=None, disk=None, log=None,
                 whole_object=WHOLE_OBJECT, clock_every=CLOCK_EVERY, sqs=None):
        self.settings, self.clock_every = settings, clock_every
        parts = Parts(settings, client, clock, disk, log, whole_object)
        self.clock, self.log, self.client = parts.clock, parts.log, parts.client
        self.checkpoint, self.fetcher, self.listing = (parts.checkpoint, parts.fetcher,
                                                       parts.listing)
        self.decoder = parts.decoder
        self.after_read = AfterRead(settings, self.client, self.fetcher, self.log)
        self.polls = Polls(settings, Notifications(settings, sqs or new_client(
            settings, 2, service="sqs"), self.log) if settings.NOTIFY_QUEUE else None,
            self.clock, self.fetcher.submit)
        self.field_guard = FieldGuard()
        self.served_at = 0  # when (clock.time) an object was last read whole
        self.rounds = {}  # server -> its Round under way
        self.late_due = {}  # server -> when (monotonic) its next re-listing is due
        self.turn = 0  # the server the next call starts with: a busy one starves no other
        self.open = None  # the OpenObject a call stopped in
        self.read = {}  # server -> [objects, events, bytes] read since the start
        self.caught_up = {}  # server -> whether its last turn found nothing more to read
        self.errors = collections.Counter()  # read_data calls that failed, by kind
        self.metrics = Metrics(settings.METRICS_FILE, self.samples, self.clock,
                               self.checkpoint.disk, self.log)

    def start(self, probe=None):
        """What NXLog's start of the module does: checks the checkpoint's folder and the
        bucket (with PROBE, a client of one quick attempt by default). Raises ConfigError for
        what can never work."""
        self.metrics.claim()
        check_bucket(self.settings, probe or probe_client(self.settings), self.log)
        self.checkpoint.claim()
        self.polls.start()
        self.metrics.start()
        self.log.info("nxlog-s3 %s started: %s" % (VERSION, self.describe()))
        return self

    def check(self, probe=None):
        """What start() checks, and whether the checkpoint can be taken up (a broken one is
        logged as an error, as the first read_data would), changing nothing (a missing
        folder is not made; COORDINATION=s3's probe deletes what it wrote): what NXLog would
        log at start, and whether another reader uses the checkpoint now."""
        self.metrics.check()
        check_bucket(self.settings, probe or probe_client(self.settings), self.log)
        self.checkpoint.check_place()
        self.polls.check()
        try:
            self.checkpoint.load(self.listing.keys_of, lock=False)
        except (CheckpointError, BotoCoreError, ClientError) as exc:
            self.log.error(str(exc))
        finally:
            self.fetcher.stop()
        in_use = self.checkpoint.in_use()
        return self.describe() + ("; a running reader uses the checkpoint now" if in_use
                                  else "")

    def describe(self):
        settings = self.settings
        return "%sreading s3://%s/ for %s, %s%s" % (
            settings.describe_instance(), settings.BUCKET,
            "every server" if settings.SERVER == "*" else ", ".join(settings.SERVER),
            self.checkpoint.describe(), ", news from the queue %s (each server listed every "
            "%g s without)" % (settings.NOTIFY_QUEUE, settings.FULL_POLL_INTERVAL)
            if settings.NOTIFY_QUEUE else "")

    def read_data(self, module):
        """NXLog's read_data: schedules exactly one next call, whatever happens in this one."""
        delay = self.settings.POLL_INTERVAL
        every = "trying again every %s s" % delay
        try:
            if self.read_objects(module):
                delay = self.more_waiting_delay
        except LeaseLost as exc:
            self.start_over()
            self.log.warning(str(exc))
        except CheckpointError as exc:
            self.start_over()
            self.errors["checkpoint"] += 1
            self.log.limited("checkpoint", self.log.error, "%s (%s)" % (exc, every))
        except (BotoCoreError, ClientError) as exc:
            self.start_over()
            self.errors[error_code(exc)] += 1
            self.log.limited(error_code(exc), self.log.error, "cannot read s3://%s/ now: %s; %s"
                             % (self.settings.BUCKET, error_text(exc), every))
        except Exception:
            self.start_over()
            self.errors["unexpected"] += 1
            self.log.limited("unexpected", self.log.error, "unexpected error, %s: %s"
                             % (every, traceback.format_exc()))
        finally:
            _schedule(module, delay)

    def read_objects(self, module):
        """Posts the events of up to MAX_OBJECTS_PER_CALL new objects, for up to
        MAX_SECONDS_PER_CALL; True if it stopped before every server had caught up."""
        checkpoint = self.checkpoint
        if not checkpoint.loaded:
            checkpoint.load(self.listing.keys_of)
        checkpoint.keep_lock()
        if checkpoint.unsaved:
            checkpoint.save()
        deadline = Deadline(self.clock, self.settings.MAX_SECONDS_PER_CALL)
        servers = self.listing.servers(deadline, self.polls.relist_servers())
        if servers is None:
            return True  # S3 has not listed them yet: the next call looks again
        servers, gone = checkpoint.servers_to_read(self.polls.with_news(servers))
        self._forget(gone)
        servers = self.polls.due(servers, self.rounds, self.caught_up)
        posting = deadline.sooner(checkpoint.posting_until())
        budget = self.settings.MAX_OBJECTS_PER_CALL
        try:
            for index in range(len(servers)):
                server = servers[(self.turn + index) % len(servers)]
                budget, caught_up = self._read_server(module, server, budget, posting)
                self.caught_up[server] = caught_up
                if caught_up:
                    self.polls.caught_up(server)
                else:
                    self.turn = (self.turn + index + 1) % len(servers)
                    return True
            return False
        finally:
            self.after_read.wait(deadline)
            self.listing.flush_reports()

    def _read_server(self, module, server, budget, deadline):
        """Posts the events of up to BUDGET new objects of SERVER, until DEADLINE. Returns
        what is left of the budget, and whether SERVER has caught up."""
        position = self.checkpoint.position(server)
        read = self.read.setdefault(server, [0, 0, 0])
        while budget and not deadline.passed():
            try:
                entry = self._next_entry(server, position, deadline)
            except TimeUp:  # a long listing goes on at the next call
                return 0, False
            if entry is None:
                return budget, True
            item, future = entry
            if future is None:  # a large object, its turn come
                entry = item, self.fetcher.get(item)
                item, future = entry
            if not deadline.wait([future]):
                self.rounds[server].again(entry)
                return 0, False  # NXLog has its turn; the next call waits on for it
            budget -= 1
            try:
                finished = self._read_object(module, position, item.key, future, deadline,
                                             read)
            except Exception as exc:  # whatever an object makes happen is that object's alone
                if not self._give_up_now(position, item.key, exc):
                    self.checkpoint.save(server)
                    continue
                self._done_with(server, position, item, read=False)
                continue
            if not finished:
                self.rounds[server].again(entry)
                self.checkpoint.save(server)
                return 0, False
            read[0] += 1
            read[2] += item.size
            self.served_at = self.clock.time()
            self._done_with(server, position, item)
        return budget, False

    def _next_entry(self, server, position, deadline):
        """The next object of SERVER to read, and its fetch: from the round under way, else
        from a new pass over the window; once that is over, from a re-listing of the horizon
        if one is due. None once SERVER has caught up; TimeUp if a long listing goes on at
        the next call."""
        while True:
            if server not in self.rounds:
                self.polls.listing_begins(server)
                self.rounds[server] = self._round(position,
                                                  self.listing.window(server, position))
            entry = self.rounds[server].next(deadline)
            if entry is not None:
                return entry
            finished = self.rounds.pop(server)
            if finished.late:
                self.late_due[server] = self.clock.monotonic() + self.settings.LATE_INTERVAL
                self.checkpoint.save(server)  # where the re-listing began, for the next one
                return None
            if position.newest is None or \
                    self.late_due.get(server, 0) > self.clock.monotonic():
                return None
            self.rounds[server] = self._round(position, self.listing.late(
                server, position, self.listing.sweep_due(position)), late=True)

    def _round(self, position, items, late=False):
        return Round(items, self.fetcher, late,
                     skip=lambda item: self._tried_lately(position, item.key))

    def _read_object(self, module, position, key, future, deadline, read):
        """Posts the events of KEY (counted in READ[1]); False if the call's time ran out
        inside it, where the next call goes on. Raises what stopped it (UndecodableObject,
        botocore's errors, anything an object can make happen). How many of its events are
        posted is kept in the checkpoint, so that neither the next call, nor a retry after
        an error partway, nor a restarted reader posts one twice."""
        already = position.partial.get(key, 0)
        poster = None
        try:
            events = self._events_to_post(position, key, future, deadline)
            poster = self.field_guard.poster(module, lambda names, cut: self._changed(
                key, names, cut), zoned_times(self.open.response))
            while poster.post(events, self.clock_every) == self.clock_every:
                if deadline.passed():
                    return False
        except TimeUp:  # S3 is slow to send the rest: the next call goes on
            return False
        except (BotoCoreError, ClientError):  # S3 or the network (some are OSErrors too)
            self._close_open()
            raise
        except DECODE_ERRORS as exc:
            self._close_open()
            raise UndecodableObject("cannot decompress it: %s" % exc) from None
        except BaseException:
            self._close_open()
            raise
        finally:
            if poster is not None and poster.posted:
                position.partial[key] = already + poster.posted
                read[1] += poster.posted
        self._close_open()
        return True

    def _changed(self, key, names, cut):
        """Some fields of an event of KEY (NAMES) had to change for NXLog to take them; CUT:
        text was cut. Said once an object, and again for text cut in an object kept."""
        if not self.open.warned or cut and key not in self.after_read.kept:
            self.open.warned = True
            self._warn_changed(key, names, cut)
            if cut:
                self.after_read.keep(key)

    def _warn_changed(self, key, names, cut):
        self.log.warning("%s holds what NXLog cannot take as it is, in the field%s %s (a NUL "
                         "or a lone surrogate, escaped as \\u0000; an integer beyond 64 bits, "
                         "posted as text%s): its events are posted with those made safe%s"
                         % (quoted(self.settings.BUCKET, key), "" if len(names) == 1 else "s",
                            ", ".join(repr(name[:100]) for name in names),
                            "; text beyond NXLog's %d bytes a field, cut there" % NXLOG_MAX_TEXT
                            if cut else "", ", and the object stays in the bucket whatever "
                            "AFTER_READ says" if cut else ""))

    def _events_to_post(self, position, key, future, deadline):
        """The events of KEY not posted yet, until DEADLINE: where the last call stopped in
        it, or from its GET past the events a crashed run had posted already."""
        if self.open is None or self.open.key != key:
            self._leave_open()
            self.open = self._opened(key, future.result(), position.partial.get(key, 0))
        self.open.deadline = deadline
        return self.open.events

    def _opened(self, key, response, posted):
        """KEY's object, its first POSTED events passed over."""
        budget = DecodeBudget(self.settings, response.get("ContentLength", 0))

        def decoded():
            events = self.decoder.events(key, response, budget)
            return itertools.islice(events, posted, None) if posted else events
        if isinstance(response["Body"], io.BytesIO):  # fetched whole
            return OpenObject(key, response, decoded, budget)
        return StreamedObject(key, response, decoded, budget)

    def _leave_open(self):
        """The object a call stopped in waits while another server has its turn: it is
        closed, and fetched again for its own turn."""
        if self.open is not None:
            key = self.open.key
            self._close_open()
            waiting = self.rounds.get(key.split("/", 1)[0])
            if waiting is not None:
                waiting.fetch_again(key)

    def _close_open(self):
        if self.open is not None:
            self.open.close()
            self.open = None

    def _give_up_now(self, position, key, exc):
        """Counts a failed read of KEY (EXC, raised while it was fetched, decoded or posted);
        True once it has failed MAX_ATTEMPTS times and is set aside (reported, marked as read,
        left in the bucket). A failure of S3 or of the network counts only when S3 served
        another object since KEY's last try: an S3 that fails every GET sets nothing aside,
        an object that S3 alone cannot serve is."""
        attempts = self.settings.MAX_ATTEMPTS
        where, reason = quoted(self.settings.BUCKET, key), object_failure(exc)
        number, last = position.attempts.pop(key, [0, None])
        if isinstance(exc, (BotoCoreError, ClientError)) and \
                (last is None or self.served_at <= last):
            position.attempts[key] = [number, self.clock.time()]
            self.log.limited("get", self.log.error, "cannot read %s now: %s; it is tried again "
                             "at a later poll (a failed attempt counts once S3 serves other "
                             "objects)" % (where, reason))
            return False
        number += 1
        if number >= attempts:
            position.put_aside(key, "%d failed attempts: %s" % (number, reason))
            self.log.error("set aside %s after %d failed attempts: %s; it stays in the bucket, "
                           "the objects after it are read" % (where, number, reason))
            return True
        position.attempts[key] = [number, self.clock.time()]
        self.log.warning("cannot read %s (attempt %d of %d): %s; it is tried again at a later "
                         "poll" % (where, number, attempts, reason))
        return False

    def _tried_lately(self, position, key):
        """Whether KEY failed less than POLL_INTERVAL ago: attempts are a poll apart (and a
        clock set back does not hold them off)."""
        attempt = position.attempts.get(key)
        return attempt is not None and \
            0 <= self.clock.time() - attempt[1] < self.settings.POLL_INTERVAL

    def _done_with(self, server, position, item, read=True):
        """ITEM of SERVER was READ, or set aside: recorded in the checkpoint; once read, kept,
        moved or deleted as AFTER_READ says (an object set aside, or one whose text NXLog
        could not take whole, stays where it is, for a person)."""
        position.attempts.pop(item.key, None)
        position.partial.pop(item.key, None)
        position.mark(item)
        self.checkpoint.save(server)
        ahead = item.epoch - self.clock.time()
        if ahead > self.settings.MAX_AHEAD:
            self.log.limited("ahead", self.log.warning, "%s is dated %d s ahead of this host's "
                             "clock (more than MAX_AHEAD=%d): it was read, but the reader takes "
                             "the newest object to be the one before it" % (
                                 quoted(self.settings.BUCKET, item.key), ahead,
                                 self.settings.MAX_AHEAD))
        self.after_read.done_with(item.key, read)

    def start_over(self):
        """After an error: the next call lists again from the checkpoint."""
        self.rounds.clear()
        self._close_open()

    def _forget(self, servers):
        """SERVERS are another reader's now (COORDINATION=s3): where this one was in them
        goes, the object open among them closed, their news handed back."""
        self.polls.let_go(servers)
        for server in servers:
            self.rounds.pop(server, None)
            self.late_due.pop(server, None)
            self.caught_up.pop(server, None)
            if self.open is not None and self.open.key.startswith(server + "/"):
                self._close_open()

    def stop(self):
        """Ends this instance as the end of its process would: the checkpoint is let go.
        NXLog has no shutdown hook, but its release of read_data runs this (common/host.py);
        tests and programs that embed the script call it too."""
        self.start_over()
        self.polls.stop()
        self.fetcher.stop()
        self.metrics.stop()
        report_place(self.checkpoint, self.log)
        self.checkpoint.release()

    def samples(self):
        return reader_samples(self)
