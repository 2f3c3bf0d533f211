"""COORDINATION=s3: readers on any hosts share the servers of one bucket, through small
objects under STATE_PREFIX written only with S3's conditional writes.

- Each reader beats: it renews its own lease object under readers/ with If-Match every
  turn (at most every LEASE_SECONDS / 3). S3 stamps it (LastModified); a reader whose beat
  is more than LEASE_SECONDS old by S3's clock (the Date of a listing) is gone.
- Each server has one state object under servers/: the reader holding it (its lease) and its
  position. It is taken with If-None-Match (created) or with If-Match (released, or left by a
  reader gone), and every save of the position is an If-Match on the ETag its holder wrote
  last. A reader that lost a server gets 412 at its next save (fencing): it can never write
  over the new holder's position.
- A reader posts only while its lease holds by its own monotonic clock: LEASE_SECONDS, less
  LEASE_MARGIN, from the moment it sent its last beat that S3 took. Another reader takes its
  servers only once S3's clock says that beat is LEASE_SECONDS old, so two readers never post
  one server at the same time. A reader whose lease ran out takes its servers again the way
  any other reader would.
- One beat renews the leases of all of a reader's servers: a reader holding a thousand
  servers makes one PUT a turn, not a thousand.
- Balance: with n servers and k readers alive, each holds at most ceil(n / k); a reader with
  more hands the surplus on (releases it), one with fewer takes free servers.
"""

import hashlib
import os
import uuid

from botocore.exceptions import BotoCoreError, ClientError

from nxlog_s3.common.errors import NEEDS_FIXING, error_text, kind_of
from nxlog_s3.common.objects import STATE_PREFIX, utc_text
from nxlog_s3.common.runtime import SCRIPT, count
from nxlog_s3.common.s3 import quoted
from nxlog_s3.common.settings import ConfigError
from nxlog_s3.reader.checkpoint import Checkpoint, CheckpointError
from nxlog_s3.reader.state import (
    STATE_VERSION,
    StateObjects,
    Taken,
    late_key,
    read_every_state,
    reader_key,
    server_of_state,
    state_key,
    state_of,
)

LEASE_MARGIN = 2.0  # seconds a reader stops posting before its lease runs out: S3 gives its
                    # times to the second
STALE_READER = 3600  # seconds after which a gone reader's beat object is deleted


class LeaseLost(Exception):
    """Another reader took over a server this one read: its reading goes on there."""


class SharedCheckpoint(Checkpoint):
    """The positions of the servers this reader holds, kept in S3 beside their leases (see
    above) rather than in a file; the same calls as Checkpoint's. CLIENT writes the state
    objects; READER_ID tells this reader from every other (by default READER_NAME and a
    random part: two readers of one name are still two)."""

    def __init__(self, settings, seconds, clock, log, disk, client, reader_id=None):
        Checkpoint.__init__(self, settings, seconds, clock, log, disk)
        self.objects = StateObjects(settings, client, clock)
        self.id = reader_id or "%s@%s" % (settings.READER_NAME, uuid.uuid4().hex[:12])
        self.path = self.objects.url(STATE_PREFIX + "servers/")
        self.every = max(1.0, min(settings.LEASE_SECONDS / 3.0, settings.POLL_INTERVAL))
        self.held = {}  # server -> the ETag of its state as this reader wrote it last
        self.written = {}  # server -> the writes its state has seen (no two bodies alike)
        self.late_keys = {}  # server -> the object its state names for the horizon's seconds
        self.dirty = set()  # servers whose position changed since it was saved
        self.valid_until = None  # monotonic: this reader posts nothing from then on
        self.turn_due = 0.0  # monotonic: when the next beat and look at the others is due
        self.look_due = 0.0  # monotonic: when free servers are looked for again at the latest
        self.alive = set()  # the readers alive at the last turn, this one among them
        self.changed_at = 0.0  # monotonic: when the readers alive last changed
        self.known = {}  # server -> (ETag, holder) of a state read and left to its holder
        self.states = {}  # server -> the ETag of its state, at the last look
        self.probed = False
        self.beat_etag = None  # the ETag of this reader's beat as it wrote it last
        self.beats = 0
        self.takeovers = 0

    # -- what Checkpoint's callers ask --

    def claim(self):
        """The reader's start probes the store: on one that does not honor conditional
        writes, two readers could post one server (ConfigError). S3 not answering yet is
        left to the first turn."""
        try:
            self._probe()
        except (BotoCoreError, ClientError) as exc:
            if kind_of(exc) in NEEDS_FIXING:
                raise ConfigError("%s: cannot write %s (COORDINATION=s3 needs s3:PutObject and "
                                  "s3:DeleteObject there): %s" % (
                                      SCRIPT, self.objects.url(STATE_PREFIX + "*"),
                                      error_text(exc))) from None
            self.log.warning("cannot probe %s for conditional writes now (%s); probed again "
                             "before any server is read" % (self.objects.url(),
                                                            error_text(exc)))

    check_place = claim

    def _probe(self):
        failed = self.objects.probe(self.id)
        if failed:
            raise ConfigError("%s: %s" % (SCRIPT, _unsafe_store(self.objects.url(), failed)))
        self.probed = True

    def load(self, keys_of_second, lock=True):
        """A reader takes nothing here: its servers come by turns (servers_to_read). A
        command (LOCK=False) reads every state as it stands, leases and positions."""
        if not lock:
            read_every_state(self)
        self.loaded = True

    def keep_lock(self):
        """No file to keep: the beats keep the leases."""

    def in_use(self):
        return any(lease["alive"] for lease in self.leases.values())

    def exists(self):
        return bool(self.leases)

    def save(self, server=None):
        """Writes the position of SERVER, and of the servers not saved yet, each with If-Match
        on its state. LeaseLost if another reader took one over (it is forgotten here);
        CheckpointError while S3 refuses or does not answer: reading pauses until it is
        saved (nothing is lost)."""
        if server in self.held:
            self.dirty.add(server)
        self.unsaved = True
        for name in sorted(self.dirty):
            try:
                self._write(name, self.id)
            except Taken:
                self._forget(name)
                raise LeaseLost("another reader took over %s: this one's lease ran out, and "
                                "the reading of it goes on there, from the position stored"
                                % name) from None
            except (BotoCoreError, ClientError) as exc:
                raise CheckpointError("cannot save the position of %s in %s: %s; reading "
                                      "pauses until it can be saved (nothing is lost)" % (
                                          name, self.path, error_text(exc))) from None
            self.dirty.discard(name)
        self.unsaved = False

    def release(self):
        """At the stop: every server is handed on with its position, and the beat deleted,
        so that the other readers take them at their next turn, not a lease later."""
        try:
            for server in sorted(self.held):
                self._release(server)
            self.objects.delete(reader_key(self.id))
        except (BotoCoreError, ClientError) as exc:  # one try: S3 down must not hold the stop
            self.log.warning("cannot hand on its servers at the stop (%s): the other readers "
                             "take them over once its lease runs out, within %d s" % (
                                 error_text(exc), self.settings.LEASE_SECONDS))

    def posting_until(self):
        """The monotonic time from which this reader may post nothing: its lease's end."""
        return self.valid_until

    def samples(self, labels):
        return [("leases_held", "gauge", "servers this reader holds the lease of", labels,
                 len(self.held)),
                ("takeovers_total", "counter", "servers taken over from a reader gone",
                 labels, self.takeovers),
                ("readers_alive", "gauge", "readers sharing the bucket, at the last turn",
                 labels, len(self.alive))]

    def describe(self):
        return "sharing its servers with the other readers through %s as %s (COORDINATION=s3)" \
            % (self.objects.url(STATE_PREFIX), self.id)

    def place(self):
        return "the positions in %s" % self.path

    # -- turns: beats, balance, takeovers --

    def servers_to_read(self, servers):
        """Of SERVERS, those this reader holds, sorted, after a turn if one is due; and those
        it let go of since the last call (the reader forgets where it was in them)."""
        gone = []
        if self.held and self.valid_until is not None and \
                self.clock.monotonic() >= self.valid_until:
            gone += self._lapse()
        if self.clock.monotonic() >= self.turn_due:
            gone += self._turn(set(servers) | set(self.held))
        return sorted(set(self.held) & set(servers)), gone

    def _lapse(self):
        gone = self._forget_all()
        self.log.warning("its lease ran out (no beat reached S3 for %d s): it stops posting "
                         "the events of %s, and takes them up again where no other reader "
                         "did" % (self.settings.LEASE_SECONDS, ", ".join(gone)))
        self.look_due = 0.0  # taken up again at the next turn, not a lease later
        return gone

    def _turn(self, servers):
        """Beats, then balances: hands on what is beyond this reader's share of SERVERS (and
        of the servers with a state, those whose prefix went empty included), or takes free
        servers up to it."""
        self.turn_due = self.clock.monotonic() + self.every
        if not self.probed:
            try:
                self._probe()
            except ConfigError as exc:
                raise CheckpointError(str(exc)[len(SCRIPT) + 2:]) from None
        gone = self._beat()
        alive = self._readers_alive()
        if alive != self.alive:
            self.alive, self.changed_at = alive, self.clock.monotonic()
        looking = self._look_now()
        if looking:
            self.look_due = self.clock.monotonic() + self.settings.LEASE_SECONDS
            self.states = self._states()
        servers = servers | set(self.states)
        share = -(-len(servers) // len(alive))
        surplus = len(self.held) - share
        if surplus > 0:
            gone += self._hand_on(surplus, len(servers), len(alive))
        if len(self.held) < share and looking:
            self._take_free(servers, share)
        return gone

    def _look_now(self):
        """Whether to list the states and look for free servers: at every turn for
        LEASE_SECONDS after the readers alive changed (a reader gone leaves its servers, one
        come makes the others hand some on), else every LEASE_SECONDS (with thousands of
        servers, pages)."""
        now = self.clock.monotonic()
        return now - self.changed_at <= self.settings.LEASE_SECONDS or now >= self.look_due

    def _states(self):
        """The servers with a state that this reader may read (SERVER), and its ETag."""
        states = {}
        for key, etag, _ in self.objects.listed("servers/")[0]:
            server = server_of_state(key)
            if server is not None and (self.settings.SERVER == "*" or
                                       server in self.settings.SERVER):
                states[server] = etag
        return states

    def _beat(self):
        """Renews this reader's lease: its beat object, created with If-None-Match, then
        rewritten with If-Match. A beat gone or changed (the others delete one older than
        STALE_READER) means its servers may be another's: they are let go, and a new beat
        made."""
        sent = self.clock.monotonic()
        self.beats += 1
        body = {"version": STATE_VERSION, "reader": self.settings.READER_NAME, "id": self.id,
                "pid": os.getpid(), "beat": self.beats, "time": utc_text(self.clock.time())}
        try:
            self.beat_etag = self.objects.put(reader_key(self.id), body,
                                              if_match=self.beat_etag,
                                              create=self.beat_etag is None)
        except Taken:
            self.log.warning("its beat %s was deleted or changed by another: it was taken "
                             "for gone, so it lets its servers go and beats anew" %
                             self.objects.url(reader_key(self.id)))
            gone = self._forget_all()
            self.beat_etag = None
            return gone + self._beat()
        self.valid_until = sent + self.settings.LEASE_SECONDS - LEASE_MARGIN
        return []

    def _readers_alive(self):
        """The readers whose beat S3 stored less than LEASE_SECONDS ago (this one too);
        beats older than STALE_READER are deleted."""
        entries, now = self.objects.listed("readers/")
        alive = {self.id}
        for key, _, stored in entries:
            if stored >= now - self.settings.LEASE_SECONDS:
                alive.add(key[len(reader_key("")):])
            elif stored < now - STALE_READER:
                self.objects.delete(key)
        return alive

    def _preference(self, server):
        """This reader's rank for SERVER: each reader prefers other servers, so that readers
        looking at once seldom reach for the same one."""
        return hashlib.sha1(("%s\n%s" % (self.id, server)).encode()).hexdigest()

    def _hand_on(self, surplus, servers, readers):
        gone = sorted(self.held, key=self._preference)[:surplus]
        for server in gone:
            self._release(server)
        self.log.info("hands on %s (%s) to the other readers: %d readers share %s" % (
            count(len(gone), "server"), ", ".join(gone), readers, count(servers, "server")))
        return gone

    def _release(self, server):
        try:
            self._write(server, None)
        except Taken:
            pass  # taken over meanwhile: nothing left to hand on
        finally:
            self._forget(server)

    def _take_free(self, servers, share):
        """Takes servers no reader alive holds, in this reader's order of preference, until
        it holds SHARE of them."""
        states = self.states
        for server in sorted(servers - set(self.held), key=self._preference, reverse=True):
            if len(self.held) >= share:
                return
            known = self.known.get(server)
            if known and known[0] == states.get(server) and known[1] in self.alive:
                continue  # unchanged since read, and its holder still alive
            if server in states:
                self._take_over(server)
            else:
                self._create(server)

    def _create(self, server):
        position = self.new_position()
        try:
            etag = self.objects.put(state_key(server), self._body(server, position, self.id, 1,
                                                                   None), create=True)
        except Taken:
            return  # another reader made it first
        self._hold(server, position, etag, 1, None)
        self.log.info("takes %s, a server no reader read before" % server)

    def _take_over(self, server):
        try:
            data, etag = self.objects.get(state_key(server))
            if data is None:
                return  # deleted meanwhile: made anew at the next look
            position, holder, written, late = state_of(self, server, data)
        except ValueError as exc:
            self.log.limited("state " + server, self.log.error, "the state of %s, %s, is broken "
                             "(%s): no reader reads %s until it is fixed, or deleted to read "
                             "it from the beginning" % (server, quoted(self.settings.BUCKET,
                                                                       state_key(server)),
                                                       exc, server))
            return
        if holder not in (None, self.id) and holder in self.alive:
            self.known[server] = (etag, holder)
            return
        try:
            etag = self.objects.put(state_key(server), self._body(
                server, position, self.id, written + 1, late), if_match=etag)
        except Taken:
            return  # another reader took it first
        self._hold(server, position, etag, written + 1, late)
        if holder in (None, self.id):
            self.log.info("takes %s, %s" % (server, _read_up_to(position)))
        else:
            self.takeovers += 1
            self.log.info("takes over %s from %s, whose lease ran out; %s" % (
                server, holder, _read_up_to(position)))

    def _hold(self, server, position, etag, written, late):
        self.positions[server], self.held[server] = position, etag
        self.written[server], self.late_keys[server] = written, late
        self.known.pop(server, None)

    def _forget_all(self):
        """Every server held is forgotten (see _forget); they are returned, sorted."""
        gone = sorted(self.held)
        for server in gone:
            self._forget(server)
        return gone

    def _forget(self, server):
        for part in (self.positions, self.held, self.written, self.late_keys, self.known):
            part.pop(server, None)
        self.dirty.discard(server)

    # -- the state objects --

    def _write(self, server, holder):
        """Saves SERVER's position with HOLDER (None: released), over the state this reader
        wrote last: its horizon's seconds first, in an object of this reader's, if they
        changed. Taken if another reader wrote the state since."""
        position = self.positions[server]
        position.seal()
        late, before = self.late_keys[server], None
        if position.late_changed:
            mine = late_key(server, self.id)
            self.objects.put(mine, {"version": STATE_VERSION, "server": server,
                                    "seconds": position.late_json()})
            position.late_changed = False
            late, before = mine, (late if late != mine else None)
        written = self.written[server] + 1
        self.held[server] = self.objects.put(state_key(server), self._body(
            server, position, holder, written, late), if_match=self.held[server])
        self.written[server], self.late_keys[server] = written, late
        if before is not None:
            self.objects.delete(before)  # the last holder's: the state names this one's now

    def _body(self, server, position, holder, written, late):
        return {"version": STATE_VERSION, "bucket": self.settings.BUCKET, "server": server,
                "holder": holder, "written": written, "time": utc_text(self.clock.time()),
                "position": position.to_json(), "late": late}


def _read_up_to(position):
    return "it goes on from the position stored (%s)" % (
        "read up to %s" % utc_text(position.newest) if position.newest is not None
        else "nothing read yet")


def _unsafe_store(url, failed):
    return "COORDINATION=s3 needs a store that honors S3's conditional writes, and %s does " \
        "not (%s): two readers could read one server at once; use COORDINATION=none (one " \
        "reader per bucket and SERVER)" % (url, failed)
