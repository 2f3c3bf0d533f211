"""common/host.py: the function NXLog calls, released at NXLog's stop, ends the threads first.

NXLog's C code is played here by a thread started with _thread.start_new_thread, whose C
bootstrap calls the function with no Python frame under it and one reference held, and by
Py_IncRef, the reference NXLog CE adds and never gives back."""

import _thread
import ctypes
import sys
import threading
import time
import weakref

import pytest

from nxlog_s3.common import host
from nxlog_s3.common.runtime import SCRIPT


class Recorded(object):
    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, message):
        self.infos.append(message)

    def warning(self, message):
        self.warnings.append(message)


@pytest.fixture
def under_nxlog(monkeypatch):
    monkeypatch.setattr(host, "called_by_nxlog", lambda: True)


@pytest.fixture
def slow_switches():
    """No thread takes the interpreter from another for a second: a thread just started
    waits until the one that started it has dropped its references."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    yield
    sys.setswitchinterval(before)


def called_from_c(entry_point, argument, extra=0):
    """ENTRY_POINT() called in a new thread by C code (the thread's bootstrap, which holds
    one reference and lets it go once the call returns) that holds EXTRA references more,
    never given back, as NXLog CE's one more; this function holds none once it returns."""
    done = threading.Event()
    for _ in range(extra):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(entry_point))
    _thread.start_new_thread(entry_point, ((argument, done),))
    return done


def entry(call, released):
    return host.EntryPoint(lambda arguments: call(*arguments),
                           lambda: released.append("released"))


def test_an_entry_point_nxlog_ce_holds_is_released_when_nxlog_lets_it_go(under_nxlog,
                                                                         slow_switches):
    calls, released = [], []

    def call(event, done):
        calls.append(event)
        done.set()

    done = called_from_c(entry(call, released), "event", extra=1)
    assert done.wait(10) and calls == ["event"]
    for _ in range(1000):  # the thread's end lets go of the bootstrap's reference
        if released:
            break
        time.sleep(0.01)
    assert released == ["released"]


@pytest.mark.parametrize("extra", [0, 2])
def test_an_entry_point_whose_c_caller_holds_other_than_nxlog_ces_references_is_left_alone(
        under_nxlog, slow_switches, extra):
    """A caller holding one reference (a later NXLog) or more: giving one back would free
    the function while it is held."""
    released, kept = [], []
    done = called_from_c(entry(lambda event, done: (kept.append(done), done.set()), released),
                         "event", extra)
    assert done.wait(10)
    time.sleep(0.1)  # the thread ends
    assert not released


def test_an_entry_point_a_python_caller_holds_is_left_alone_whatever_it_holds(under_nxlog):
    """A script of the user's that calls this one's write_data holds it in a global, and
    its call adds one: NXLog's count, from Python. Armed, it was freed in use (SIGSEGV)."""
    released = []
    held = [entry(lambda event, done: None, released)]  # the global
    held[0](("event", None))  # the call's own reference: two in all
    assert not held[0].armed
    held.clear()
    assert not released


def test_an_entry_point_outside_nxlog_never_gives_a_reference_back(slow_switches):
    released = []
    point = entry(lambda event, done: done.set(), released)
    assert called_from_c(point, "event", extra=1).wait(10)
    assert not point.armed and not released


def test_the_module_attribute_gives_each_call_its_entry_point_and_nothing_else():
    seen = []
    attribute = host.entry_points({"write_data": seen.append}, lambda: None, Recorded())
    attribute("write_data")("event")
    assert seen == ["event"]
    assert isinstance(attribute("write_data"), host.EntryPoint)
    with pytest.raises(AttributeError):
        attribute("stop_data")


class Capsule(object):
    """An event's capsule (LogData.c_logdata), one a weak reference can watch."""


class Event(object):
    """om_python's LogData: its capsule in c_logdata."""

    def __init__(self, capsule):
        self.c_logdata = capsule


def om_python_events(count, leaked):
    """COUNT events, as NXLog CE makes them: with LEAKED, each capsule holds a reference
    more, never given back. The weak references to their capsules, and the events."""
    capsules = [Capsule() for _ in range(count)]
    if leaked:
        for capsule in capsules:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(capsule))
    return [weakref.ref(capsule) for capsule in capsules], [Event(capsule)
                                                            for capsule in capsules]


def each_called_from_c(entry_point, events):
    """ENTRY_POINT(event) for each of EVENTS, each in a thread of its own whose C bootstrap
    makes the call, one after the other; returns once the threads have let go of them.
    ENTRY_POINT's call is the list.append of a list it returns."""
    for event in events:
        called = len(entry_point.calls)
        _thread.start_new_thread(entry_point, (event,))
        end = time.monotonic() + 10
        while len(entry_point.calls) == called:
            assert time.monotonic() < end
            time.sleep(0.001)
    time.sleep(0.1)  # the last thread's end lets go of its event


def recording_entry_point():
    calls = []
    point = host.EntryPoint(calls.append, lambda: None)
    point.calls = calls
    return point


def freed(references, wait=10.0):
    end = time.monotonic() + wait
    while any(reference() is not None for reference in references):
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_the_reference_nxlog_ce_keeps_to_each_events_capsule_is_given_back(under_nxlog,
                                                                           slow_switches):
    capsules, events = om_python_events(3, leaked=True)
    point = recording_entry_point()
    each_called_from_c(point, events)
    assert point.leaked is not None
    assert all(reference() is not None for reference in capsules)  # the events hold them
    del events, point
    assert freed(capsules)


def test_capsules_without_nxlog_ces_reference_are_left_alone(under_nxlog, slow_switches):
    capsules, events = om_python_events(3, leaked=False)
    point = recording_entry_point()
    each_called_from_c(point, events)
    assert point.leaked is None
    assert all(reference() is not None for reference in capsules)
    del events, point
    assert freed(capsules)


def test_a_capsule_someone_else_holds_keeps_nxlog_ces_reference(under_nxlog, slow_switches):
    capsules, events = om_python_events(2, leaked=True)
    point = recording_entry_point()
    each_called_from_c(point, events[:1])
    kept = events[1].c_logdata
    before = sys.getrefcount(kept)
    each_called_from_c(point, events[1:])
    assert sys.getrefcount(kept) == before


def test_capsules_outside_nxlog_are_left_alone(slow_switches):
    capsules, events = om_python_events(1, leaked=True)
    point = recording_entry_point()
    each_called_from_c(point, events)
    assert point.leaked is None
    kept = events[0].c_logdata
    del events, point
    assert sys.getrefcount(kept) == 3  # this name's, the argument's, NXLog CE's own


def dropped_references(drop):
    """How many references DROP(an object) gives back."""
    probe = object()
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(probe))
    held = sys.getrefcount(probe)
    drop(probe)
    return held - sys.getrefcount(probe)


class NoDrop(object):
    Py_INCREF = staticmethod(lambda value: value)  # returns it: no reference is kept
    Py_DECREF = staticmethod(lambda value: value)


CTYPES_OWN = host._ctypes


@pytest.mark.parametrize("module", [CTYPES_OWN, object(), NoDrop()],
                         ids=["ctypes' own", "missing", "not doing what it says"])
def test_the_reference_dropper_gives_back_one_reference(monkeypatch, module):
    monkeypatch.setattr(host, "_ctypes", module)
    drop = host.reference_dropper()
    assert dropped_references(drop) == 1
    assert (drop is CTYPES_OWN.Py_DECREF) == (module is CTYPES_OWN)  # the quick one, if fit


def started(target, name):
    thread = threading.Thread(target=target, daemon=True, name="%s %s" % (SCRIPT, name))
    thread.start()
    return thread


def test_a_stop_waits_for_every_thread_of_the_script_and_says_so():
    stopping, ended = threading.Event(), threading.Event()
    lingering = started(lambda: stopping.wait() and ended.wait(), "lingering")
    log = Recorded()

    def stop():  # sets the flag and returns, leaving its thread to end on its own
        stopping.set()
        threading.Timer(0.05, ended.set).start()

    host.stop_before_nxlog_clears(stop, log, wait=10)
    assert not lingering.is_alive()
    assert log.infos and "threads ended" in log.infos[0] and not log.warnings


def test_a_stop_that_leaves_a_thread_running_past_its_wait_is_named_in_a_warning():
    release = threading.Event()
    stuck = started(release.wait, "uploader 1")
    log = Recorded()
    try:
        host.stop_before_nxlog_clears(lambda: None, log, wait=0.05)
    finally:
        release.set()
        stuck.join()
    assert not log.infos
    assert "%s uploader 1 still runs" % SCRIPT in log.warnings[0]
    assert "NXLog may crash" in log.warnings[0] and "nothing is lost" in log.warnings[0]
