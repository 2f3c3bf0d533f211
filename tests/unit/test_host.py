"""common/host.py: the function NXLog calls, released at NXLog's stop, ends the threads first.

NXLog's C code is played here by map(), a caller from C that holds one reference, and by
Py_IncRef, the reference NXLog CE adds and never gives back."""

import ctypes
import threading

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


def call_as_nxlog_ce(entry, argument):
    """ENTRY called from C by a holder of NXLog CE's two references, which lets go of one
    once done (NXLog does at its stop): what is left is the reference it adds and leaks."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(entry))
    calls = map(entry, (argument,))
    del entry
    return list(calls)


def test_an_entry_point_nxlog_ce_holds_is_released_when_nxlog_lets_it_go(under_nxlog):
    calls, released = [], []
    results = call_as_nxlog_ce(host.EntryPoint(calls.append, lambda: released.append(1)),
                               "event")
    assert calls == ["event"] and results == [None]
    assert released == [1]


@pytest.mark.parametrize("holders", [1, 3])
def test_an_entry_point_whose_caller_holds_other_than_nxlog_ces_references_is_left_alone(
        under_nxlog, holders):
    """A caller holding one reference (a later NXLog, a program) or more: giving one back
    would free the function while it is held."""
    released = []
    entry = host.EntryPoint(lambda event: None, lambda: released.append(1))
    kept = [entry] * (holders - 1)  # besides map's own
    calls = map(entry, (None,))
    del entry
    list(calls)
    assert not released
    del kept
    assert not released  # nor at its release: nothing was given back


def test_an_entry_point_outside_nxlog_never_gives_a_reference_back():
    released = []
    entry = host.EntryPoint(lambda event: None, lambda: released.append(1))
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(entry))  # as NXLog CE would: never let go
    list(map(entry, (None,)))
    assert not entry.armed and not released


def test_the_module_attribute_gives_each_call_its_entry_point_and_nothing_else():
    seen = []
    attribute = host.entry_points({"write_data": seen.append}, lambda: None, Recorded())
    attribute("write_data")("event")
    assert seen == ["event"]
    assert isinstance(attribute("write_data"), host.EntryPoint)
    with pytest.raises(AttributeError):
        attribute("stop_data")


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
