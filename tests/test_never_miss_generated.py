"""Generated buckets (hypothesis): several writers sharing one SERVER, event times that are
normal, late up to the horizon, ahead of the clock or absurd, foreign and impossible keys
dropped into the prefix, writer and reader restarts, all interleaved. Afterwards every event
a writer took is posted exactly once, and every object dropped in is posted once or named in
a warning."""

import collections
import itertools
import time

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from helpers import drain, put, read_all
from nxlog_stub import api

WRITERS = 3
LOOKBACK = 60  # small, so that late objects are left to the re-listing
HORIZON = 86400
# (kind, value): seconds behind or ahead of the clock, or an EventReceivedTime as it is.
EVENT_TIMES = st.one_of(
    st.just(("now", 0)),
    st.tuples(st.just("late"), st.integers(1, HORIZON - 600)),
    st.tuples(st.just("ahead"), st.integers(1, 250)),  # less than MAX_AHEAD=300
    st.tuples(st.just("absurd"), st.sampled_from(
        ["9999-12-31 23:59:59", "not a time", "+10 days", "1900-01-01 00:00:00"])))
# Objects another tool drops into web01/: how their key is made from a number N.
FOREIGN = {
    "off the scheme": lambda n, now: "web01/notes-%d.txt" % n,
    "impossible": lambda n, now: "web01/2026-02-30/10.00.00.%d" % n,
    "from the future": lambda n, now: "web01/2030-01-01/00.00.00.%d" % n,
    "late, another tool's": lambda n, now: "web01/%s.%d" % (
        time.strftime("%Y-%m-%d/%H.%M.%S", time.gmtime(now - 3600)), 1000 + n),
    "behind the horizon": lambda n, now: "web01/%s.%d" % (
        time.strftime("%Y-%m-%d/%H.%M.%S", time.gmtime(now - HORIZON - 3600)), 1000 + n),
}
STEPS = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(0, WRITERS - 1), EVENT_TIMES, st.integers(1, 3)),
    st.tuples(st.just("drop"), st.sampled_from(sorted(FOREIGN))),
    st.just(("read",)),
    st.just(("restart the reader",)),
    st.tuples(st.just("restart a writer"), st.integers(0, WRITERS - 1)),
), min_size=1, max_size=12)


def received(kind, value, now):
    if kind == "absurd":
        return api.local_time_string(now + 864000) if value == "+10 days" else value
    return api.local_time_string(now + {"now": 0, "late": -value, "ahead": value}[kind])


class Run(object):
    """One generated example: its own bucket and folders, writers made on first use."""

    def __init__(self, s3, settings, load, folder, number):
        self.s3, self.settings, self.load, self.folder = s3, settings, load, folder
        self.bucket = "nxlog-generated-%d" % number
        s3.create_bucket(Bucket=self.bucket)
        settings(BUCKET=self.bucket, CHECKPOINT=folder / "checkpoint")
        self.writers, self.reader = {}, None
        self.written, self.dropped, self.posted = [], {}, []
        self.numbers = itertools.count(1)

    def writer(self, index):
        if index not in self.writers:
            self.settings(SPOOL_DIR=self.folder / ("writer-%d.spool" % index))
            self.writers[index] = self.load("s3_write")
        return self.writers[index]

    def step(self, step):
        name, arguments = step[0], step[1:]
        getattr(self, name.replace(" ", "_"))(*arguments)

    def write(self, index, event_time, count):
        writer, now = self.writer(index), time.time()
        for _ in range(count):
            text = "writer %d, event %d" % (index, next(self.numbers))
            event = api.new_event(api.output_module("s3"), {
                "raw_event": text, "EventReceivedTime": received(*event_time, now=now)})
            assert api.call_write_data(writer.write_data, event), api.logged("ERROR")
            self.written.append(text)

    def drop(self, kind):
        number = next(self.numbers)
        key = FOREIGN[kind](number, time.time())
        text = "dropped %d (%s)" % (number, kind)
        put(self.s3, key, text, bucket=self.bucket)
        self.dropped[text] = key

    def read(self):
        if self.reader is None:
            self.reader = self.load("s3_read")
        self.posted += read_all(self.reader)

    def restart_the_reader(self):
        if self.reader is not None:
            self.reader.stop()
            self.reader = None

    def restart_a_writer(self, index):
        if index in self.writers:
            self.writers.pop(index).stop()
            self.writer(index)

    def finish(self):
        """Every writer drained, read until caught up, and once more after a restart."""
        for writer in self.writers.values():
            drain(writer, seconds=60)
        self.read()
        self.restart_the_reader()
        self.read()
        for instance in list(self.writers.values()) + [self.reader]:
            instance.stop()

    def check(self):
        posted = collections.Counter(self.posted)
        assert {text: count for text, count in posted.items() if count != 1} == {}
        assert set(self.written) <= set(posted), sorted(set(self.written) - set(posted))
        warned = " ".join(api.logged("WARNING") + api.logged("ERROR"))
        for text, key in self.dropped.items():
            assert text in posted or repr("s3://%s/%s" % (self.bucket, key)) in warned, (
                "passed over in silence: %s" % key)


# 25 generated buckets, some 45 s of one worker: make reliability (and CI) runs it, make test
# the cases of tests/test_never_miss.py
@pytest.mark.reliability
def test_no_object_is_passed_over_in_silence(s3, settings, load, tmp_path):
    settings(BATCH_EVENTS=1, UPLOAD_THREADS=2, POLL_INTERVAL=5, LOOKBACK=LOOKBACK,
             LATE_HORIZON=HORIZON, LATE_INTERVAL=0, SWEEP_INTERVAL=0.01)  # each re-listing a sweep
    examples = itertools.count(1)

    @hypothesis_settings(max_examples=25, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(STEPS)
    @example([("write", 0, ("now", 0), 2), ("read",), ("drop", "behind the horizon"),
              ("drop", "impossible"), ("drop", "off the scheme")])
    @example([("write", 0, ("now", 0), 1), ("read",), ("write", 1, ("late", 5 * 3600), 3),
              ("restart the reader",), ("read",), ("write", 0, ("absurd", "+10 days"), 1)])
    @example([("write", 0, ("ahead", 250), 1), ("drop", "from the future"), ("read",),
              ("write", 1, ("now", 0), 2), ("restart a writer", 1), ("write", 1, ("now", 0), 1)])
    def interleaving(steps):
        number = next(examples)
        folder = tmp_path / ("example-%d" % number)
        folder.mkdir()
        api.clear_logs()
        run = Run(s3, settings, load, folder, number)
        for step in steps:
            run.step(step)
        run.finish()
        run.check()
    interleaving()
