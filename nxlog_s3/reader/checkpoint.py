"""The checkpoint file: every server's position, saved atomically, locked, read back."""

import json
import os
import re

from nxlog_s3.common.files import (
    held_in_this_process,
    hold_lock,
    lock_held,
    lock_holder,
    open_nofollow,
    private_directory,
)
from nxlog_s3.common.objects import SCHEME_KEY, second_prefix, utc_text
from nxlog_s3.common.runtime import SCRIPT
from nxlog_s3.common.settings import ConfigError
from nxlog_s3.reader.position import Position, _mapping, _utc_time

CHECKPOINT_VERSION = 3  # 3: the horizon's seconds in CHECKPOINT.late
                                # fetch threads; larger ones stream as they are posted
REMEMBERED_OTHER_KEYS = 1000  # keys outside the scheme remembered as reported, at the most


class CheckpointError(RuntimeError):
    """The checkpoint file cannot be used: the reader reads nothing until it is fixed. The
    message is logged with the script's name before it."""


class Checkpoint(object):
    """Where the reader is: a Position for each server and the keys off the scheme reported,
    kept in the file CHECKPOINT (and CHECKPOINT.late for the horizon's seconds), written
    atomically, and locked so that no second reader uses it."""

    def __init__(self, settings, seconds, clock, log, disk):
        self.settings, self.seconds, self.clock, self.log, self.disk = (
            settings, seconds, clock, log, disk)
        self.path = os.path.abspath(settings.CHECKPOINT)
        self.lock_path = self.path + ".lock"
        self.lock_fd = None  # held while this reader lives
        self.positions = {}
        self.other_keys = []
        self.started_at = int(clock.time())  # the first start's, once a checkpoint has it
        self.loaded = False
        self.unsaved = False  # it lags behind what was posted: no more is read until saved
        self.leases = {}  # with COORDINATION=s3, read by a command: see SharedCheckpoint

    def position(self, server):
        """SERVER's Position; a new one starts at the beginning, or with START_AT=now at the
        reader's first start (a server first seen later is read from then)."""
        if server not in self.positions:
            self.positions[server] = self.new_position()
        return self.positions[server]

    def new_position(self):
        """Where a server never read before starts: at the beginning, or with START_AT=now
        at the reader's first start."""
        return Position(self, floor=self.started_at if self.settings.START_AT == "now"
                        else None)

    def servers_to_read(self, servers):
        """Of SERVERS, those this reader reads (every one: the file is this reader's alone),
        and those it let go of since the last call (none)."""
        return list(servers), []

    def posting_until(self):
        """The monotonic time from which this reader may post nothing (None: no such time;
        see SharedCheckpoint)."""
        return None

    def samples(self, labels):
        """The checkpoint's own metrics (see Reader.samples): none for a file."""
        return []

    def describe(self):
        return "checkpoint %s" % self.path

    def place(self):
        """Where the next start goes on from, as the stop's log line says."""
        return "the checkpoint %s" % self.path

    def exists(self):
        return os.path.exists(self.path)

    def first_sight_of_other_key(self, key):
        """Whether KEY was not reported before. The first REMEMBERED_OTHER_KEYS are kept (a
        bucket with more strays has the others reported again, counted: flush_reports)."""
        if key in self.other_keys:
            return False
        if len(self.other_keys) < REMEMBERED_OTHER_KEYS:
            self.other_keys.append(key)
        return True

    # -- the file --

    def load(self, keys_of_second, lock=True):
        """Takes up the file, once (KEYS_OF_SECOND lists a second's keys, for the old
        scripts' lastkey.log); a missing file means: start as START_AT says. LOCK=False (a
        check) reads it without taking it."""
        if lock and self.lock_fd is None:
            self._lock()
        text = self._read_text(self.path)
        if text is not None:
            self._take_up(text, self._read_text(self.path + ".late"), keys_of_second)
        self.loaded = True

    def _take_up(self, text, late, keys_of_second):
        try:
            try:
                if text.startswith("{"):
                    self._from_json(json.loads(text))
                    if late is not None:
                        self._add_late(json.loads(late))
                    return
                if text and "\n" not in text:
                    old = re.match(r"^b'(.*)'$", text)  # the old scripts sometimes wrote repr
                    self._from_last_key(old.group(1) if old else text, keys_of_second)
                    return
                raise ValueError("empty" if not text else "neither JSON nor one key")
            except (KeyError, TypeError, AttributeError) as exc:
                raise ValueError("malformed: %s %s" % (type(exc).__name__, exc)) from None
        except ValueError as exc:
            self.positions, self.other_keys = {}, []
            raise CheckpointError("checkpoint %s is broken (%s); fix it, or delete it (and "
                                  "%s.late) to read s3://%s/ from the beginning"
                                  % (self.path, exc, self.path, self.settings.BUCKET)) from None

    def _read_text(self, path):
        """PATH's text, or None if there is no such file."""
        try:
            with open_nofollow(path) as handle:
                return handle.read().decode("utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError("cannot read checkpoint %s: %s" % (path, exc)) from None

    def _from_json(self, data):
        if not isinstance(data, dict) or data.get("version") not in (1, 2, CHECKPOINT_VERSION):
            raise ValueError("not a checkpoint of version 1 to %d" % CHECKPOINT_VERSION)
        if data.get("bucket") != self.settings.BUCKET:
            raise CheckpointError(
                "checkpoint %s belongs to bucket %s, not %s: give each reader its own file "
                "with NXLOG_S3_CHECKPOINT" % (self.path, data.get("bucket"),
                                              self.settings.BUCKET))
        if data["version"] == 1:  # one server, the last second reached: read up to it
            match = SCHEME_KEY.match((data.get("group") or "") + "0")
            if match is None:
                raise ValueError("its group %r is not a second of the key scheme"
                                 % data.get("group"))
            self._read_up_to(match.group(1), match.group(2), set(data["done"]))
            return
        other_keys = data["other_keys"]
        if not isinstance(other_keys, list) or not all(isinstance(key, str)
                                                       for key in other_keys):
            raise ValueError("other_keys is not a list of keys")
        self.positions = {server: Position.from_json(self, _mapping(position, server))
                          for server, position in _mapping(data["servers"], "servers").items()}
        self.other_keys = list(other_keys)
        started_at = _utc_time(data.get("started_at"), "started_at")
        if started_at is not None:
            self.started_at = started_at

    def _add_late(self, data):
        """Takes up the .late file's seconds (see Position)."""
        if data.get("version") != CHECKPOINT_VERSION or data.get("bucket") != \
                self.settings.BUCKET:
            raise ValueError("its .late file is not of version %d for bucket %s"
                             % (CHECKPOINT_VERSION, self.settings.BUCKET))
        for server, seconds in _mapping(data["servers"], "servers").items():
            self.position(server).add_late(seconds)

    def _read_up_to(self, server, second, counters):
        """SERVER read up to SECOND (COUNTERS of that second): what an older checkpoint
        knows. Nothing before that second is read again, nor reported."""
        epoch = self.seconds.epoch(second)
        self.positions = {server: Position(self, newest=epoch, read={
            second: {counter << 5 for counter in counters}}, floor=epoch)}

    def _from_last_key(self, last_key, keys_of_second):
        """The old scripts' lastkey.log: they read keys in text order up to and including
        LAST_KEY."""
        match = SCHEME_KEY.match(last_key)
        if match is None:
            raise ValueError("%r is not a key of the scheme SERVER/YYYY-MM-DD/HH.MM.SS.N"
                             % last_key)
        server, second = match.group(1), match.group(2)
        if self.settings.SERVER != "*" and server not in self.settings.SERVER:
            raise ValueError("its key %r is not under %s/" % (
                last_key, "/, ".join(self.settings.SERVER)))
        counters = {int(SCHEME_KEY.match(key).group(3)) for key in keys_of_second(
            second_prefix(server, second) + ".") if key <= last_key and SCHEME_KEY.match(key)}
        self._read_up_to(server, second, counters | {int(match.group(3))})

    def in_use(self):
        """Whether another reader has the checkpoint now (its lock taken and let go; no lock
        file made where there is none)."""
        return lock_held(self.lock_path)

    def claim(self):
        """The reader's start makes the checkpoint's folder and takes the lock, where it can:
        another instance in this NXLog holding it is a setting that can never work
        (ConfigError); a reader of another process is waited for, load() trying again at
        each poll."""
        private_directory(os.path.dirname(self.path), "CHECKPOINT", self.log)
        try:
            self._lock()
        except CheckpointError as exc:
            if held_in_this_process(self.lock_path):
                raise ConfigError("%s: %s" % (SCRIPT, exc)) from None

    def check_place(self):
        """What `check` asks: whether the checkpoint's folder can be used (made if missing),
        changing nothing."""
        private_directory(os.path.dirname(self.path), "CHECKPOINT", self.log, make=False)

    def _lock(self):
        """Refuses a CHECKPOINT that another reader uses: each would overwrite the other's."""
        try:
            self.lock_fd = hold_lock(self.lock_path)
        except OSError as exc:  # a link planted there (ELOOP), say
            raise CheckpointError("cannot lock the checkpoint: %s" % exc) from None
        if self.lock_fd is None:
            raise CheckpointError("another reader uses the checkpoint %s: %s; give each reader "
                                  "its own CHECKPOINT (an instance's: NXLOG_S3_<INSTANCE>_"
                                  "CHECKPOINT)" % (self.path, lock_holder(self.lock_path)))

    def keep_lock(self):
        """Takes the lock again if its file went (its folder removed while the reader ran), so
        that no second reader can start on the same CHECKPOINT; the whole checkpoint is then
        written again at the next save. Raises CheckpointError while another reader holds
        it."""
        if self.lock_fd is not None:
            try:
                if os.path.samestat(os.stat(self.lock_path), os.fstat(self.lock_fd)):
                    return
            except FileNotFoundError:
                pass
            os.close(self.lock_fd)
            self.lock_fd = None
            self.log.limited("lock", self.log.warning, "the lock file of the checkpoint %s was "
                             "removed while this reader ran: it is taken again, and the "
                             "checkpoint written again" % self.path)
        os.makedirs(os.path.dirname(self.lock_path), mode=0o700, exist_ok=True)
        self._lock()
        for position in self.positions.values():
            position.late_changed = True

    def save(self, server=None):
        """Writes the checkpoint (every server's position: SERVER, the one that changed, is
        for SharedCheckpoint): first the horizon's seconds to CHECKPOINT.late if they
        changed, then the rest (a crash between the two loses nothing: the two are merged).
        If the disk refuses (full, read-only), reading pauses until it takes it, so that a
        crash meanwhile posts again one object at most."""
        self.unsaved = True
        try:
            for position in self.positions.values():
                position.seal()
            late = [position for position in self.positions.values() if position.late_changed]
            if late:
                self.disk.write_atomically(self.path + ".late", _compact(self._late_json()))
                for position in late:
                    position.late_changed = False
            self.disk.write_atomically(self.path, _compact(self._json()))
        except OSError as exc:
            raise CheckpointError("cannot write checkpoint %s: %s; reading pauses until it can "
                                  "be written (nothing is lost)" % (self.path, exc)) from None
        self.unsaved = False

    def _json(self):
        return {"version": CHECKPOINT_VERSION, "bucket": self.settings.BUCKET,
                "started_at": utc_text(self.started_at), "other_keys": self.other_keys,
                "servers": {server: position.to_json()
                            for server, position in sorted(self.positions.items())}}

    def _late_json(self):
        return {"version": CHECKPOINT_VERSION, "bucket": self.settings.BUCKET,
                "servers": {server: position.late_json()
                            for server, position in sorted(self.positions.items())}}

    def release(self):
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def _compact(data):
    return json.dumps(data, separators=(",", ":")).encode()
