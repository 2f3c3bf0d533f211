"""The spool's flow: events from write_data into batches, batches to the uploader threads.

The files themselves are SpoolFiles'. One lock (a Condition) guards the counts and the batch
being filled; no fsync runs under it but write_data's own (FSYNC=event), so that a
write_data call waits on no other thread's disk: a batch is closed (fsync, manifest, rename)
outside the lock, by an uploader thread (see Spool.append), and the events held through a
full disk, written when an upload frees room, are fsynced once it is let go.
"""

import collections
import errno
import itertools
import os
import threading
import uuid

from nxlog_s3.common.objects import utc_text
from nxlog_s3.common.runtime import SCRIPT, count
from nxlog_s3.writer.encode import _last_epoch
from nxlog_s3.writer.spool_files import Batch

RETRY_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)  # seconds between upload rounds while S3 fails
MAX_CALL_WAIT = 1.0  # seconds a write_data call may wait for room: NXLog cannot stop a module
                     # while it is inside a call, and waits for it before it stops cleanly
RECENT_KEYS = 10  # keys stored last, kept for `status`
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # no quotas on Windows


class SpoolFull(RuntimeError):
    """write_data refuses an event (SPOOL_FULL=drop): NXLog logs this and drops the event."""

    def __init__(self, reason):
        RuntimeError.__init__(self, "%s: %s" % (SCRIPT, reason))


class Spool(object):
    """The batch being filled and the closed batches waiting for S3, kept in FILES.

    write_data appends to the open batch under the lock; a full batch, or one BATCH_AGE old,
    is closed outside it; the uploader threads take closed batches oldest first (each batch
    by one thread at a time), and each is removed once S3 confirmed it.
    """

    def __init__(self, settings, files, keys, clock, log, disk, stopping):
        self.settings, self.files, self.keys, self.clock, self.log, self.disk = (
            settings, files, keys, clock, log, disk)
        self.stopping = stopping  # the writer's: set, the uploader threads take no more
        self.folder = files.folder
        # What every event reads, kept at hand: write_data is the hot path.
        self.max_bytes, self.batch_events = settings.SPOOL_MAX_BYTES, settings.BATCH_EVENTS
        self.batch_bytes, self.fsync_event = settings.BATCH_BYTES, settings.FSYNC == "event"
        self.fsync_batch = settings.FSYNC == "batch"
        self.write = disk.write
        self.mutex = threading.Lock()  # write_data takes it bare: `with` on a Condition is
        self.lock = threading.Condition(self.mutex)  # two Python calls more per event
        self.closed = collections.OrderedDict()  # seq -> Batch, oldest first
        self.closing = {}  # seq -> (Batch, fd): taken off the open file, not closed yet
        self.uploading = set()  # the seqs of the closed batches an uploader thread has taken
        self.bytes = 0  # what the spool holds, open batch included
        self.closed_events = 0  # what the closed batches, and those being closed, hold
        self.taken = 0  # events written to the spool since the start
        self.dropped = 0
        self.held = collections.deque()  # (format, record, received) the full disk refused
        self.open_fd = None
        self.open_seq = self.open_epoch = self.open_last = None
        self.open_events = self.open_bytes = 0
        self.open_format = None
        self.open_since = None  # monotonic time of the open batch's first event
        self.next_seq = 1
        self.last_stored_epoch = 0  # the key time in LAST_STORED
        self.recent = collections.deque(maxlen=RECENT_KEYS)  # what LAST_KEYS holds

    def where(self):
        return self.files.where()

    # -- start-up --

    def open(self):
        """Takes the spool's folder: no other writer may use it."""
        self.files.take()

    def in_use(self):
        return self.files.in_use()

    def recover(self):
        """Takes up what an earlier run left, and the latest key time it stored."""
        recovered = self.files.recover(self.keys)
        self.recent.extend(recovered.recent)
        self.last_stored_epoch, self.next_seq = (recovered.last_stored_epoch,
                                                 recovered.next_seq)
        for batch in recovered.batches:
            self.closed[batch.seq] = batch
            self.closed_events += batch.events
            self.bytes += batch.bytes

    def save(self, batch):
        self.files.save(batch)

    def note_error(self, key, code, reason):
        self.files.note_error(key, code, reason)

    def note_stored(self, batch):
        with self.lock:
            self.recent.append({"key": batch.key, "events": batch.events,
                                "stored": utc_text(self.clock.time())})
            recent = list(self.recent)
        self.files.note_stored(recent)

    # -- write_data's side --

    def append(self, body_format, record, received):
        """Puts one event's record on disk, in the open batch, and hands the batch to the
        uploader threads when full (_hand_over_closes). Returns within about MAX_CALL_WAIT,
        since NXLog cannot stop a module while it is inside a call: while the spool is full,
        it waits that long for uploads to free room, then takes the event all the same
        (SPOOL_FULL=block) or refuses it (drop). A full disk likewise: then the event is
        held in memory until the disk takes it."""
        try:
            with self.mutex:
                deadline = None
                if self.bytes + len(record) > self.max_bytes:
                    deadline = self._wait_for_room(len(record))
                if not self.held:
                    try:
                        self._write_event(body_format, record, received)
                        return
                    except OSError as exc:
                        if not self._worth_waiting(exc):
                            self._refuse(exc)
                self.held.append((body_format, record, received))
                self._write_held(deadline or self.clock.monotonic() + MAX_CALL_WAIT,
                                 calling=True)
        finally:
            if self.closing:  # a batch this call filled (read unlocked: only a hint)
                self._hand_over_closes()

    def _write_held(self, deadline, calling=False):
        """Writes the records held, oldest first, retrying a full disk until DEADLINE; what
        is still held then is written at the next call, or when an upload frees room.
        CALLING: for write_data, whose event (the last held) is refused if the disk fails
        otherwise; the events before it were taken, and stay held. Not CALLING (an upload
        freed room), no fsync runs under the lock: with FSYNC=event, the duplicate of each
        file written is returned, for the caller to fsync once it has let the lock go."""
        delay, written = 0.01, set()
        while self.held:
            try:
                fd = self._write_event(*self.held[0], sync=calling)
            except OSError as exc:
                if not self._worth_waiting(exc):
                    if not calling:
                        break
                    self.held.pop()  # this call's event: refused, NXLog logs why
                    self._refuse(exc)
                self.log.limited("disk full", self.log.warning, "the disk of the spool %s is "
                                 "full (%s): write_data waits up to %g s for room, then holds "
                                 "the event in memory until the disk takes it (%s held now; "
                                 "lost if NXLog stops first)" % (
                                     self.where(), exc.strerror, MAX_CALL_WAIT,
                                     count(len(self.held), "event")))
                if self.clock.monotonic() + delay > deadline:
                    break
                self.lock.wait(delay)
                delay = min(delay * 2, 1.0)
                continue
            written.add(fd)
            self.held.popleft()
        return [os.dup(fd) for fd in written] if self.fsync_event and not calling else []

    def _worth_waiting(self, exc):
        """Whether a write that failed with EXC may work once uploads free room."""
        return exc.errno in DISK_FULL and self.settings.SPOOL_FULL == "block"

    def _refuse(self, exc):
        if exc.errno in DISK_FULL:
            self.dropped += 1
            raise SpoolFull("the disk of the spool %s is full (%s): event dropped, %d dropped "
                            "so far" % (self.where(), exc.strerror, self.dropped))
        raise SpoolFull("cannot write to the spool %s: %s: event refused" % (self.where(), exc))

    def _write_event(self, body_format, record, received, sync=True):
        """Writes RECORD to the open batch (opened for it if need be), all of it or none: a
        write the disk cut short (full) is taken back, so that no torn line sits between two
        whole ones. Detaches the batch it fills; returns the file descriptor written to.
        The hot path: one call of write_data's, with the lock held."""
        fd = self.open_fd
        if fd is None or self.open_format != body_format:
            if fd is not None:
                self._detach_open()
            fd = self._open(body_format, self.keys.key_time(received))
        size = len(record)
        try:
            if self.write(fd, record) != size:
                raise OSError(errno.ENOSPC, "the disk took only part of the event")
        except OSError:
            self.disk.ftruncate(fd, self.open_bytes)
            raise
        if self.fsync_event and sync:
            self.disk.fsync(fd)
        self.open_events += 1
        self.open_bytes += size
        self.bytes += size
        self.taken += 1
        self.open_last = received
        if self.open_events >= self.batch_events or self.open_bytes >= self.batch_bytes:
            self._detach_open()
        return fd

    def _wait_for_room(self, size):
        """Waits up to MAX_CALL_WAIT for uploads to free room for SIZE bytes, and returns
        when that wait ends (SPOOL_FULL=block); or refuses the event (drop)."""
        deadline = self.clock.monotonic() + MAX_CALL_WAIT
        limit = self.max_bytes
        if size > limit:
            raise SpoolFull("an event of %d bytes can never fit in SPOOL_MAX_BYTES=%d"
                            % (size, limit))
        full = "the spool %s is full (SPOOL_MAX_BYTES=%d, S3 is not taking events fast " \
               "enough)" % (self.where(), limit)
        if self.settings.SPOOL_FULL == "drop":
            self.dropped += 1
            raise SpoolFull("%s: event dropped, %d dropped so far" % (full, self.dropped))
        self.log.limited("spool full", self.log.warning, "%s: each write_data call waits up to "
                         "%g s for room, then takes its event all the same, so that NXLog's "
                         "flow control holds its inputs back" % (full, MAX_CALL_WAIT))
        delay = 0.01
        while self.bytes + size > limit:
            wait = min(delay, deadline - self.clock.monotonic())
            if wait <= 0:
                break
            self.lock.wait(wait)
            delay = min(delay * 2, 1.0)
        return deadline

    def _open(self, body_format, epoch):
        self.open_seq, self.next_seq = self.next_seq, self.next_seq + 1
        self.open_epoch, self.open_format = int(epoch), body_format
        self.open_fd = self.files.create_open(self.open_seq, self.open_epoch, body_format)
        self.open_since = self.clock.monotonic()
        self.lock.notify_all()  # the uploader now has an age limit to watch
        return self.open_fd

    # -- closing, outside the lock --

    def _detach_open(self):
        """Under the lock: the open batch becomes a Batch with its key, to be closed once
        the lock is let go (_close_detached); the next event opens another."""
        batch = Batch(self.folder, seq=self.open_seq, id=uuid.uuid4().hex,
                      format=self.open_format, epoch=self.open_epoch,
                      first=utc_text(self.open_epoch),
                      last=utc_text(_last_epoch(self.open_last, self.open_epoch)),
                      events=self.open_events, bytes=self.open_bytes)
        self.keys.assign(batch)
        self.closing[batch.seq] = (batch, self.open_fd)
        self.closed_events += batch.events
        self.open_fd = self.open_since = None
        self.open_events = self.open_bytes = 0

    def _hand_over_closes(self):
        """Leaves the close of the batch write_data filled (fsync, manifest, rename: some
        3 ms, 3 % of a busy writer's time under NXLog) to an uploader thread, which uploads
        it next; its events are in the file already, as safe from a crash of the process
        as once closed. One filled earlier and still waiting (the uploader threads all busy,
        or waiting out S3's errors) is closed here: no more than one batch waits."""
        with self.lock:
            if sum(fd is not None for _, fd in self.closing.values()) <= 1:
                self.lock.notify_all()  # the uploader threads waiting for a batch
                return
        self._close_detached()

    def _close_detached(self):
        """Closes the batches taken off the open file; one the disk refuses (full) stays
        to be closed again. False if one did."""
        with self.lock:
            waiting = [each for each in self.closing.values() if each[1] is not None]
            for batch, _ in waiting:
                self.closing[batch.seq] = (batch, None)  # this thread closes it
        refused = False
        for batch, fd in waiting:
            try:
                self.files.close(batch, fd, self.fsync_batch)
            except OSError as exc:
                refused = True
                self.log.limited("cannot close", self.log.warning, "cannot close a batch in "
                                 "%s: %s; it stays open and closing is tried again"
                                 % (self.where(), exc))
                with self.lock:
                    self.closing[batch.seq] = (batch, fd)
                    self.lock.notify_all()
                continue
            with self.lock:
                del self.closing[batch.seq]
                younger = self.closed and next(reversed(self.closed)) > batch.seq
                self.closed[batch.seq] = batch
                if younger:  # closed after a younger batch: oldest first all the same
                    self.closed = collections.OrderedDict(sorted(self.closed.items()))
                self.lock.notify_all()
        return not refused

    # -- the uploaders' side --

    def next_batch(self, timeout):
        """Takes the oldest closed batch no other uploader thread has, closing the open one
        once it is BATCH_AGE old; waits up to TIMEOUT for one. None if there is none yet."""
        age = self.settings.BATCH_AGE
        deadline = self.clock.monotonic() + timeout
        retry_close = None
        while True:
            if retry_close is not None or self.closing:
                retry_close = None if self._close_detached() else \
                    self.clock.monotonic() + RETRY_DELAYS[0]
            with self.lock:
                if self.stopping.is_set():
                    return None
                if self.open_since is not None and \
                        self.clock.monotonic() - self.open_since >= age:
                    self._detach_open()
                    continue
                for seq, batch in self.closed.items():
                    if seq not in self.uploading:
                        self.uploading.add(seq)
                        return batch
                now = self.clock.monotonic()
                if now >= deadline:
                    return None
                wake = min(deadline, retry_close or deadline, deadline if
                           self.open_since is None else self.open_since + age)
                self.lock.wait(max(0.0, wake - now))

    def give_back(self, batch):
        """An uploader thread is done with BATCH for now: another may take it."""
        with self.lock:
            self.uploading.discard(batch.seq)
            self.lock.notify_all()

    def remove(self, batch):
        """S3 has BATCH: its files go, and so does what write_data may be waiting for (the
        events held while the disk was full are written now). The manifest of the batch with
        the latest key time becomes LAST_STORED."""
        unsynced = []
        try:
            with self.lock:
                latest = batch.key_epoch >= self.last_stored_epoch
                self.files.stored(batch, latest)
                if latest:
                    self.last_stored_epoch = batch.key_epoch
                del self.closed[batch.seq]
                self.closed_events -= batch.events
                self.uploading.discard(batch.seq)
                self.bytes -= batch.bytes
                if self.held:
                    unsynced = self._write_held(deadline=0)
                self.lock.notify_all()
        finally:
            for fd in unsynced:  # the events held, made durable with the lock let go
                try:
                    self.disk.fsync(fd)
                finally:
                    os.close(fd)
            self._close_detached()

    def wake(self):
        """Wakes the uploader threads that wait for a batch, to see whether they stop."""
        with self.lock:
            self.lock.notify_all()

    def release(self):
        """Closes the batches write_data filled (their close handed over, see
        _hand_over_closes), then the spool's files, the open batch left as the end of the
        process would leave it."""
        self._close_detached()
        with self.lock:
            fds = [self.open_fd] + [fd for _, fd in self.closing.values()]
            for fd in fds:
                if fd is not None:
                    os.close(fd)
            self.open_fd = None
            self.closing.clear()
            self.files.let_go()

    def leftovers(self):
        """(events in the batch being filled, in the closed batches, held in memory)."""
        with self.lock:
            return self.open_events, self.closed_events, len(self.held)

    def pending(self):
        """Events not in S3 yet, open batch and held ones included."""
        return self.depth()[1]

    def depth(self):
        """(batches, events, bytes, first event's time of the oldest, or None): what waits."""
        with self.lock:
            oldest = [batch.epoch for batch in itertools.islice(self.closed.values(), 1)]
            oldest += [batch.epoch for batch, _ in self.closing.values()]
            if self.open_fd is not None:
                oldest.append(self.open_epoch)
            return (len(self.closed) + len(self.closing) + (self.open_fd is not None),
                    self.closed_events + self.open_events + len(self.held), self.bytes,
                    min(oldest) if oldest else None)
