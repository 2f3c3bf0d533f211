"""Where a server's reading stands: the second and the counters read, and the marks that
name objects."""

import calendar
import collections
import functools
import itertools
import time

from nxlog_s3.common.objects import (
    COMPRESSION_SUFFIXES,
    FORMAT_SUFFIXES,
    SECOND_FORMAT,
    _second_of,
    second_prefix,
    utc_text,
)

REMEMBERED_SET_ASIDE = 1000  # objects set aside kept per server in the checkpoint, for status
# One object listed: its key, the second, counter and suffix in it, that second's epoch, its
# size, when S3 stored it (epoch), and its ETag.
Listed = collections.namedtuple("Listed", "key second counter suffix epoch size modified etag")


class Seconds(object):
    """The seconds of the key scheme (SECOND_FORMAT) in KEY_TIME, as text and as epochs."""

    def __init__(self, key_time):
        self.utc = key_time == "utc"
        self.epoch = functools.lru_cache(maxsize=65536)(self._epoch)  # every key listed asks

    def _epoch(self, second):
        """Seconds since the epoch of SECOND; ValueError for a date or time that cannot be
        (2026-02-30, 25.61.61)."""
        stamp = time.strptime(second, SECOND_FORMAT)
        epoch = int(calendar.timegm(stamp) if self.utc else time.mktime(stamp))
        if self.text(epoch) != second:  # strptime takes 60 and 61 seconds; local time has gaps
            raise ValueError("%s is not a time that exists" % second)
        return epoch

    def text(self, epoch):
        return time.strftime(SECOND_FORMAT, (time.gmtime if self.utc else time.localtime)(epoch))


# An object read is marked in its second by its counter and suffix: counter << 5 | the
# suffix's code. Code 0 stands for any suffix: an older checkpoint knew counters only.
SUFFIX_CODES = {suffix: code for code, suffix in enumerate(sorted(
    [""] + [kind + compression for kind in FORMAT_SUFFIXES.values()
            for compression in COMPRESSION_SUFFIXES.values()]), 1)}
SUFFIX_OF_CODE = {code: suffix for suffix, code in SUFFIX_CODES.items()}


def _mark(counter, suffix):
    return counter << 5 | SUFFIX_CODES[suffix]


def _marks_text(marks):
    """MARKS as text: each suffix's counters as ranges (1-3,7), with @SUFFIX but for marks of
    any suffix, the groups joined by ';' (1-3@.jsonl.gz;1@.parquet)."""
    by_code = collections.defaultdict(set)
    for mark in marks:
        by_code[mark & 31].add(mark >> 5)
    return ";".join(_ranges(counters) + ("@" + SUFFIX_OF_CODE[code] if code else "")
                    for code, counters in sorted(by_code.items()))


def _marks(text):
    """_marks_text's TEXT as marks; an older checkpoint's counters (1-3,7) as marks of any
    suffix."""
    if not isinstance(text, str):
        raise ValueError("counters %r are not text such as 1-3,7@.jsonl.gz" % (text,))
    marks = set()
    for group in filter(None, text.split(";")):
        ranges, at, suffix = group.partition("@")
        if at and suffix not in SUFFIX_CODES:
            raise ValueError("%r is not a suffix of the key scheme" % suffix)
        code = SUFFIX_CODES[suffix] if at else 0
        marks.update(counter << 5 | code for counter in _counters(ranges))
    return marks


def _ranges(counters):
    """{1, 2, 3, 7} as "1-3,7": the counters of a busy second take a few bytes, not pages."""
    runs = []
    for _, run in itertools.groupby(enumerate(sorted(counters)), lambda pair: pair[1] - pair[0]):
        run = [counter for _, counter in run]
        runs.append(str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1]))
    return ",".join(runs)


def _counters(text):
    """"1-3,7" as {1, 2, 3, 7}."""
    counters = set()
    for run in filter(None, text.split(",")):
        first, _, last = run.partition("-")
        counters.update(range(int(first), int(last or first) + 1))
    return counters


class Position(object):
    """How far the reader got in one server's objects.

    NEWEST is the newest second read, a key far ahead of this host's clock apart (MAX_AHEAD).
    The counters read, reported or set aside are kept for each second from keep_from() on:
    LATE_HORIZON behind NEWEST, or LATE_START (the horizon at the last sweep), whichever is
    older, and every second after it. Each poll lists from LOOKBACK behind NEWEST; the
    re-listing, every LATE_INTERVAL, lists from keep_from() up to there (see Listing.late).
    FLOOR (START_AT=now, or an older checkpoint taken up) is the time before which nothing is
    read.

    The seconds before SEALED are kept apart, in LATE, and saved in the checkpoint's .late
    file only when they change: saving after every object stays cheap however many seconds
    the horizon holds. Objects read behind SEALED (late ones) are noted in READ first, and
    moved to LATE a SEAL_EVERY at a time.
    """

    def __init__(self, rules, newest=None, read=None, floor=None, late_start=None, sealed=None,
                 attempts=None, partial=None, swept_at=None, set_aside=None, ids=None):
        self.rules = rules  # the Checkpoint: settings, seconds, clock
        self.newest = newest  # epoch of the newest second read, or None
        self.read = read or {}  # second -> set of marks (see _mark), from SEALED on
        self.late = {}  # the same, before SEALED
        self.floor = floor
        self.late_start = late_start  # the horizon (epoch) at the last sweep
        self.sealed = sealed
        self.swept_at = swept_at  # S3's time when the last sweep began (see Listing.late)
        self.late_changed = False  # LATE changed since the last save
        self.seconds_behind = 0  # seconds noted in READ behind SEALED since the last move
        self.pruned_to = None  # keep_from() at the last prune
        self.attempts = attempts or {}  # key -> [failed reads so far, when the last one was]
        self.partial = partial or {}  # key of an object read in part -> its events posted
        self.set_aside = set_aside or {}  # key not read -> [why, when (UTC text)], the latest
        self.ids = ids or {}  # with AFTER_READ delete or move: key read -> identity(), so that
                              # a key stored anew once the reader removed it is read

    def start_after(self, server, epoch):
        """A key before every object at or after EPOCH (and the floor): where a listing
        starts; None for the beginning."""
        starts = [start for start in (self.floor, epoch) if start is not None]
        return second_prefix(server, self.rules.seconds.text(max(starts))) if starts else None

    def window_start(self):
        return None if self.newest is None else self.newest - self.rules.settings.LOOKBACK

    def horizon(self):
        return self.newest - self.rules.settings.LATE_HORIZON

    def keep_from(self):
        return self.horizon() if self.late_start is None else min(self.late_start,
                                                                   self.horizon())

    def done(self, item):
        """Whether ITEM was read (or reported, or set aside), or lies before the floor. An
        object is its key and, once the reader removes what it read, its identity too."""
        if self.floor is not None and item.epoch < self.floor:
            return True
        if item.key in self.ids and self.ids[item.key] != identity(item):
            return False
        mark = _mark(item.counter, item.suffix)
        return any(mark in marks or (mark & ~31) in marks
                   for marks in (self.read.get(item.second, ()),
                                 self.late.get(item.second, ())))

    def mark(self, item):
        """ITEM is done. It becomes the newest read if it is, unless it lies further ahead of
        this host's clock than MAX_AHEAD."""
        marks = self.read.setdefault(item.second, set())
        if not marks and self.sealed is not None and item.epoch < self.sealed:
            self.seconds_behind += 1
        marks.add(_mark(item.counter, item.suffix))
        if self.rules.settings.AFTER_READ != "keep":
            self.ids[item.key] = identity(item)
        if item.epoch > self.rules.clock.time() + self.rules.settings.MAX_AHEAD:
            return
        if self.newest is None or item.epoch > self.newest:
            self.newest = item.epoch
            if self.pruned_to is None or \
                    self.keep_from() - self.pruned_to >= self.rules.settings.SEAL_EVERY:
                self.prune()

    def put_aside(self, key, why):
        """KEY will not be read (it failed MAX_ATTEMPTS times, or landed too late): kept with
        WHY for `status`, the latest REMEMBERED_SET_ASIDE of them."""
        self.set_aside.pop(key, None)
        self.set_aside[key] = [why, utc_text(self.rules.clock.time())]
        for old in list(self.set_aside)[:-REMEMBERED_SET_ASIDE]:
            del self.set_aside[old]

    def finish_late(self, horizon):
        """A sweep (or, without sweeps, a re-listing) has listed up to the window: later
        re-listings start at HORIZON."""
        self.late_start = horizon
        self.prune()

    def prune(self):
        """Forgets the seconds no listing reaches any more. Compared as text, which sorts as
        time does (to within the hour a local clock repeats in autumn)."""
        keep_from = self.keep_from()
        first = self.rules.seconds.text(keep_from)
        for part in (self.late, self.read):
            for old in [old for old in part if old < first]:
                del part[old]
                self.late_changed |= part is self.late
        for old in [key for key in self.ids if _second_of(key) < first]:
            del self.ids[old]
        if self.floor is not None and self.floor < keep_from:
            self.floor = None
        self.pruned_to = keep_from

    def seal(self):
        """Moves the seconds behind SEALED to LATE, once SEALED moves on (it follows the
        window a SEAL_EVERY at a time), or once SEAL_EVERY of them wait (see the class)."""
        start, every = self.window_start(), self.rules.settings.SEAL_EVERY
        if start is None:
            return
        moved_on = self.sealed is None or start - self.sealed >= every
        if not moved_on and self.seconds_behind < every:
            return  # most saves: nothing to move, and no look through READ
        self.sealed, self.seconds_behind = start if moved_on else self.sealed, 0
        epoch = self.rules.seconds.epoch
        behind = [second for second in self.read if epoch(second) < self.sealed]
        for second in behind:
            self.late.setdefault(second, set()).update(self.read.pop(second))
        self.late_changed |= bool(behind)

    def to_json(self):
        def text(epoch):
            return None if epoch is None else self.rules.seconds.text(epoch)
        return {"newest": text(self.newest), "read": _read_to_json(self.read),
                "floor": text(self.floor), "late_start": text(self.late_start),
                "sealed": text(self.sealed), "attempts": self.attempts, "partial": self.partial,
                "swept_at": None if self.swept_at is None else utc_text(self.swept_at),
                "set_aside": self.set_aside, "ids": self.ids}

    def late_json(self):
        return _read_to_json(self.late)

    def add_late(self, seconds):
        """Takes up the seconds of the .late file."""
        for second, marks in _read_from_json(seconds, self.rules.seconds).items():
            self.late.setdefault(second, set()).update(marks)

    @classmethod
    def from_json(cls, rules, data):
        def epoch(name):
            text = data.get(name)
            if text is not None and not isinstance(text, str):
                raise ValueError("%s is %r, not a second such as 2026-11-28/10.00.00"
                                 % (name, text))
            return None if text is None else rules.seconds.epoch(text)
        return cls(rules, epoch("newest"), _read_from_json(data["read"], rules.seconds),
                   epoch("floor"), epoch("late_start"), epoch("sealed"),
                   _attempts_from_json(data["attempts"]), _partial_from_json(data["partial"]),
                   _utc_time(data.get("swept_at")), _set_aside_from_json(data.get("set_aside", {})),
                   _ids_from_json(data.get("ids", {})))


def _read_to_json(read):
    return {second: _marks_text(marks) for second, marks in read.items()}


def _mapping(data, what):
    if not isinstance(data, dict):
        raise ValueError("%s is %r, not an object" % (what, data))
    return data


def _utc_time(text, name="swept_at"):
    """The epoch of TEXT, a time utc_text wrote; None for None."""
    if text is None:
        return None
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        raise ValueError("%s is %r, not a time such as 2026-11-28T10:00:00Z"
                         % (name, text)) from None


def _read_from_json(data, seconds):
    read = {}
    for second, counters in _mapping(data, "read").items():
        seconds.epoch(second)
        read[second] = _marks(counters)
    return read


def _attempts_from_json(data):
    for key, attempt in _mapping(data, "attempts").items():
        if not (isinstance(attempt, list) and len(attempt) == 2 and isinstance(attempt[0], int)
                and isinstance(attempt[1], (int, float))):
            raise ValueError("attempts of %r are %r, not [count, time]" % (key, attempt))
    return dict(data)


def _set_aside_from_json(data):
    for key, entry in _mapping(data, "set_aside").items():
        if not (isinstance(entry, list) and len(entry) == 2 and
                all(isinstance(part, str) for part in entry)):
            raise ValueError("set_aside of %r is %r, not [why, when]" % (key, entry))
    return dict(data)


def _ids_from_json(data):
    for key, value in _mapping(data, "ids").items():
        if not isinstance(value, str):
            raise ValueError("ids of %r is %r, not an ETag and a time" % (key, value))
    return dict(data)


def identity(item):
    """What tells an object from another stored under the same key: its ETag and when S3
    stored it."""
    return "%s %d" % (item.etag, item.modified)


def _partial_from_json(data):
    for key, posted in _mapping(data, "partial").items():
        if not isinstance(posted, int) or isinstance(posted, bool) or posted < 0:
            raise ValueError("partial of %r is %r, not a count of events" % (key, posted))
    return dict(data)
