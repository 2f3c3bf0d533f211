"""The spool's files: the one part that knows their names and layout. In SPOOL_DIR:

    .lock                  held by the running writer (`check` and `status` take it an instant)
    SEQ-EPOCH.FORMAT.open  a batch being filled (EPOCH: its first event's time)
    SEQ.json               a closed batch's manifest: id, format, events, times and its key
    SEQ.data               a closed batch's body, uncompressed
    .last-stored.json      the manifest of the batch stored with the latest key time
    .last-keys.json        the keys stored last, for `status`
    .last-error.json       the last upload error, for `status`
    damaged/               the files of a batch that could not be read back, kept for a person
    .tmp.*                 a file being written atomically (see Disk.write_atomically)

Closing writes the manifest before it renames .open to .data, so that after a crash at any
point the start-up recovery knows every batch: nothing waits in the spool unnamed.
"""

import json
import os
import re
import uuid

from nxlog_s3.common.files import (
    NOFOLLOW,
    hold_lock,
    lock_held,
    lock_holder,
    open_nofollow,
    private_directory,
)
from nxlog_s3.common.objects import utc_text
from nxlog_s3.common.runtime import SCRIPT, count
from nxlog_s3.common.settings import ConfigError
from nxlog_s3.writer.encode import _last_epoch

LINE_FORMATS = ("jsonl", "parquet")  # batches spooled as JSON lines (see Encoder)
LOCK_NAME = ".lock"
LAST_STORED = ".last-stored.json"
LAST_ERROR = ".last-error.json"
LAST_KEYS = ".last-keys.json"
DAMAGED = "damaged"
MANIFEST_NAME = re.compile(r"^\d+\.json$")
OPEN_NAME = re.compile(r"^\d+-\d+\.[a-z]+\.open$")
STATUS_READS = 5  # readings of a spool whose batches change meanwhile (spool_status)
LOCK_WAIT = 2.0  # seconds a start waits for the spool's lock before it takes it as another
                 # writer's (`check` and `status` hold it for an instant, to see)


class Batch(object):
    """A closed batch: its manifest, and where its body waits in the spool FOLDER."""

    FIELDS = ("seq", "id", "format", "epoch", "first", "last", "events", "bytes", "key",
              "key_epoch")

    def __init__(self, folder, **manifest):
        self.folder = folder
        for name in self.FIELDS:
            setattr(self, name, manifest.get(name))

    def path(self, suffix):
        return os.path.join(self.folder, "%012d.%s" % (self.seq, suffix))

    def manifest(self):
        return json.dumps({name: getattr(self, name) for name in self.FIELDS}).encode()


def _read_batch(folder, path):
    with open_nofollow(path) as handle:
        return Batch(folder, **json.loads(handle.read().decode()))


def _json_file(path):
    """PATH's JSON object, or None if there is none (or not whole yet)."""
    try:
        with open_nofollow(path) as handle:
            value = json.loads(handle.read().decode())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class Recovered(object):
    """What an earlier run left in the spool: closed BATCHES (oldest first), the sequence
    number the next batch takes, the key time of the last batch stored, the keys stored last."""

    def __init__(self):
        self.batches, self.next_seq, self.last_stored_epoch, self.recent = [], 1, 0, []


class SpoolFiles(object):
    """The files of the spool FOLDER, laid out as this module's docstring says. It keeps no
    count of events or batches: that is Spool's. DURABLE: fsync manifests (FSYNC is not
    os)."""

    def __init__(self, folder, clock, log, disk, durable):
        self.folder, self.clock, self.log, self.disk = folder, clock, log, disk
        self.durable = durable
        self.lock_fd = None

    def where(self):
        return os.path.abspath(self.folder)

    def path(self, name):
        return os.path.join(self.folder, name)

    # -- the folder and its lock --

    def take(self):
        """Makes sure the folder can be used, and takes it: no other writer may use it."""
        private_directory(self.folder, "SPOOL_DIR", self.log, own=True)
        lock = self.path(LOCK_NAME)
        deadline = self.clock.monotonic() + LOCK_WAIT
        try:
            fd = hold_lock(lock)
            while fd is None and self.clock.monotonic() < deadline:
                self.clock.sleep(0.05)  # a check or status may hold it for an instant
                fd = hold_lock(lock)
        except OSError as exc:  # a link planted there (ELOOP), say
            raise ConfigError("%s: cannot lock the spool %s: %s" % (SCRIPT, lock, exc)) from None
        if fd is None:
            raise ConfigError("%s: the spool %s is in use by %s: give each <Output> its own "
                              "SPOOL_DIR (an instance's: NXLOG_S3_<INSTANCE>_SPOOL_DIR)"
                              % (SCRIPT, self.where(), lock_holder(lock)))
        self.lock_fd = fd

    def in_use(self):
        """A check of the folder that changes nothing (a missing one is not made): whether
        another writer uses the spool now."""
        return private_directory(self.folder, "SPOOL_DIR", self.log, make=False) and \
            lock_held(self.path(LOCK_NAME))

    def let_go(self):
        """Gives the folder up, as the end of the process would."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    # -- recovery at start --

    def recover(self, keys):
        """What an earlier run left: its batches (the one it was filling closed now, each
        given a key after those KEYS already follows), and the latest key time it stored."""
        recovered = Recovered()
        recovered.last_stored_epoch = self._recover_last_stored(keys)
        recovered.recent = (_json_file(self.path(LAST_KEYS)) or {}).get("keys", [])
        names = sorted(os.listdir(self.folder))
        for name in names:
            if name.startswith(".tmp."):
                os.unlink(self.path(name))
        manifests = {int(name[:-5]): name for name in names if MANIFEST_NAME.match(name)}
        opens = {int(name.split("-")[0]): name for name in names if OPEN_NAME.match(name)}
        for seq in sorted(set(manifests) | set(opens)):
            recovered.next_seq = max(recovered.next_seq, seq + 1)
            try:
                batch = self._recovered_batch(keys, seq, manifests.get(seq), opens.get(seq))
            except (ValueError, TypeError, KeyError) as exc:  # a damaged manifest or name
                self._set_aside(seq, exc)
                continue
            if batch is not None:
                recovered.batches.append(batch)
        if recovered.batches:
            self.log.info("%s (%s) left by an earlier run %s uploaded first" % (
                count(len(recovered.batches), "batch", "batches"),
                count(sum(batch.events for batch in recovered.batches), "event"),
                "is" if len(recovered.batches) == 1 else "are"))
        return recovered

    def _recover_last_stored(self, keys):
        """The key time of the last batch stored, kept in LAST_STORED across restarts, so
        that keys never go back even once the spool is empty."""
        path = self.path(LAST_STORED)
        try:
            batch = _read_batch(self.folder, path)
            if not isinstance(batch.key_epoch, (int, float)):
                raise ValueError("no key_epoch")
        except FileNotFoundError:
            return 0
        except (ValueError, TypeError) as exc:
            self.log.warning("%s cannot be read (%s): the next keys follow the events' times"
                             % (os.path.abspath(path), exc))
            return 0
        keys.follow(batch, path)
        return batch.key_epoch

    def _set_aside(self, seq, reason):
        """Moves the files of a batch that cannot be understood to SPOOL_DIR/damaged/, where
        they stay for a person to look at, and goes on with the others."""
        damaged = self.path(DAMAGED)
        os.makedirs(damaged, mode=0o700, exist_ok=True)
        prefix = "%012d" % seq
        for name in os.listdir(self.folder):
            if name.startswith(prefix):
                os.replace(self.path(name), os.path.join(damaged, name))
        self.log.error("the spooled batch %s cannot be read (%s); its files are kept in %s"
                       % (prefix, reason, os.path.abspath(damaged)))

    def _recovered_batch(self, keys, seq, manifest_name, open_name):
        if manifest_name is not None:
            path = self.path(manifest_name)
            batch = _read_batch(self.folder, path)
            keys.follow(batch, path)
            if open_name is not None:  # the crash came between manifest and rename
                os.replace(self.path(open_name), batch.path("data"))
            if os.path.exists(batch.path("data")):
                return batch
            os.unlink(batch.path("json"))  # uploaded; the crash came between the two deletes
            return None
        return self._close_torn(keys, seq, open_name)

    def _close_torn(self, keys, seq, open_name):
        """The batch an earlier run was filling: cut a torn last line, then close it."""
        path = self.path(open_name)
        with open_nofollow(path) as handle:
            body = handle.read()
        epoch, body_format, _ = open_name.split("-")[1].split(".")
        epoch = int(epoch)
        if body_format in LINE_FORMATS and not body.endswith(b"\n"):
            body = body[:body.rfind(b"\n") + 1]
            with open_nofollow(path, "r+b") as handle:
                handle.truncate(len(body))
        if not body:
            os.unlink(path)
            return None
        events = body.count(b"\n") if body_format in LINE_FORMATS else 1
        batch = Batch(self.folder, seq=seq, id=uuid.uuid4().hex, format=body_format,
                      epoch=epoch, first=utc_text(epoch),
                      last=_last_time(body, body_format, epoch), events=events,
                      bytes=len(body))
        keys.assign(batch)
        self.save(batch)
        os.replace(path, batch.path("data"))
        return batch

    # -- batches --

    def _open_path(self, seq, epoch, body_format):
        return self.path("%012d-%d.%s.open" % (seq, epoch, body_format))

    def create_open(self, seq, epoch, body_format):
        """A new batch's file, for appending; its descriptor."""
        return os.open(self._open_path(seq, epoch, body_format),
                       os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | NOFOLLOW, 0o600)

    def close(self, batch, fd, sync):
        """Closes the open file FD of BATCH (its key assigned): fsync if SYNC, manifest
        first, then the rename (so that a crash leaves no batch unnamed). If the manifest
        cannot be written (a full disk), FD stays open and nothing changed: it can be tried
        again."""
        if sync:
            self.disk.fsync(fd)
        self.save(batch)
        os.close(fd)
        os.replace(self._open_path(batch.seq, batch.epoch, batch.format), batch.path("data"))

    def save(self, batch):
        """Writes BATCH's manifest (its key included), durably unless FSYNC=os."""
        self.disk.write_atomically(batch.path("json"), batch.manifest(), self.durable)

    def stored(self, batch, latest):
        """S3 has BATCH: its files go; its manifest stays as LAST_STORED if its key time is
        the LATEST stored."""
        os.unlink(batch.path("data"))
        if latest:
            os.replace(batch.path("json"), self.path(LAST_STORED))
        else:
            os.unlink(batch.path("json"))

    # -- news for `status`, left to the OS to sync --

    def note_error(self, key, code, reason):
        """Keeps the last upload error in LAST_ERROR (a full disk: the log says it)."""
        error = {"time": utc_text(self.clock.time()), "key": key, "code": code,
                 "reason": reason}
        self._note(LAST_ERROR, error)

    def note_stored(self, recent):
        """Keeps the keys stored last, RECENT, in LAST_KEYS."""
        self._note(LAST_KEYS, {"keys": recent})

    def _note(self, name, value):
        try:
            self.disk.write_atomically(self.path(name), json.dumps(value).encode(), sync=False)
        except OSError:
            pass


def _last_time(body, body_format, epoch):
    """The time of the last event of a torn batch's BODY, or EPOCH if it says none."""
    if body_format in LINE_FORMATS:
        last_line = body[body.rfind(b"\n", 0, len(body) - 1) + 1:]
        try:
            epoch = _last_epoch(json.loads(last_line).get("EventReceivedTime"), epoch)
        except (ValueError, AttributeError):
            pass
    return utc_text(epoch)


def _lines_in(path):
    """The whole lines in PATH, read a MiB at a time (a batch being filled may be large)."""
    lines = 0
    with open_nofollow(path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            lines += chunk.count(b"\n")
    return lines


def spool_status(folder, now):
    """What the spool FOLDER holds, read without taking it: a running writer may use it,
    and close or store a batch while it is read; the folder is then read again, up to
    STATUS_READS times, until its batches stay the same through a reading. Times are UTC,
    marked Z."""
    status = dict(spool=os.path.abspath(folder), **_batches_status(folder, [], now),
                  last_stored=None, stored_lately=[], last_error=None, in_use=None)
    if not os.path.isdir(folder):
        return status
    status["in_use"] = lock_held(os.path.join(folder, LOCK_NAME))
    names = _batch_names(folder)
    for _ in range(STATUS_READS):
        batches = _batches_status(folder, names, now)
        names, before = _batch_names(folder), names
        if names == before:
            break
    status.update(batches)
    stored = _json_file(os.path.join(folder, LAST_STORED))
    if stored:
        status["last_stored"] = {"key": stored.get("key"), "last": stored.get("last")}
    status["stored_lately"] = (_json_file(os.path.join(folder, LAST_KEYS)) or {}).get("keys", [])
    status["last_error"] = _json_file(os.path.join(folder, LAST_ERROR))
    return status


def _batch_names(folder):
    """The names of FOLDER's batch files (manifests, bodies, batches being filled)."""
    return sorted(name for name in os.listdir(folder)
                  if MANIFEST_NAME.match(name) or OPEN_NAME.match(name) or
                  name.endswith(".data"))


def _batches_status(folder, names, now):
    """The batches that NAMES (in FOLDER) hold: their counts, the batch being filled, the
    oldest event. A file gone meanwhile (the batch closed or stored) is left out."""
    found = {"closed_batches": 0, "events": 0, "bytes": 0, "open_batch": None,
             "oldest_event": None, "oldest_event_age": None}
    firsts, present = [], set(names)  # a set: a spool may hold a million one-event batches
    for name in names:
        path = os.path.join(folder, name)
        if MANIFEST_NAME.match(name) and name[:-5] + ".data" in present:
            manifest = _json_file(path) or {}
            found["closed_batches"] += 1
            found["events"] += manifest.get("events") or 0
            found["bytes"] += manifest.get("bytes") or 0
            firsts.append(manifest.get("epoch"))
        elif OPEN_NAME.match(name):
            try:
                size = os.path.getsize(path)
                events = _lines_in(path) if name.split(".")[1] in LINE_FORMATS \
                    else int(size > 0)
            except FileNotFoundError:
                continue
            filling = found["open_batch"] or {"events": 0, "bytes": 0}  # one, or one more
            found["open_batch"] = {"events": filling["events"] + events,  # being closed
                                   "bytes": filling["bytes"] + size}
            found["events"] += events
            found["bytes"] += size
            firsts.append(int(name.split("-")[1].split(".")[0]))
    firsts = [epoch for epoch in firsts if isinstance(epoch, (int, float))]
    if firsts:
        found["oldest_event"] = utc_text(min(firsts))
        found["oldest_event_age"] = int(max(0, now - min(firsts)))
    return found
