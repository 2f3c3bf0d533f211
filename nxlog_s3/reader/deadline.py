"""Deadline: a read_data call's time limit, one object passed down to every part that may
wait (a listing's next page, an object's fetch, a streamed object's next events).

A part that cannot go on before the deadline raises TimeUp and keeps its place: the next
call, with a new deadline, goes on where it stopped. NXLog cannot stop a module while it is
inside a call, so no call may wait on S3 past its time."""

import concurrent.futures


class TimeUp(Exception):
    """The call's time is up before what it waits for came."""


class Deadline(object):
    """SECONDS from now on CLOCK's monotonic time; None: no limit (a command, which may
    wait as long as S3 takes)."""

    def __init__(self, clock, seconds=None):
        self.clock = clock
        self.at = None if seconds is None else clock.monotonic() + seconds

    def left(self):
        """Seconds left, 0 once passed; None for no limit (a timeout of None waits)."""
        return None if self.at is None else max(0.0, self.at - self.clock.monotonic())

    def passed(self):
        return self.at is not None and self.clock.monotonic() > self.at

    def check(self):
        """Raises TimeUp once the deadline has passed."""
        if self.passed():
            raise TimeUp()

    def now_or_never(self):
        """A deadline that has passed already: what waits nothing, as when there is other
        work at hand."""
        return Deadline(self.clock, -1.0)

    def sooner(self, at):
        """This deadline, or one at AT (monotonic) if that comes first; None: this one."""
        if at is None or self.at is not None and self.at <= at:
            return self
        deadline = Deadline(self.clock)
        deadline.at = at
        return deadline

    def wait(self, futures):
        """Waits for FUTURES until the deadline at most; whether all of them are done."""
        done, pending = concurrent.futures.wait(futures, self.left())
        return not pending
