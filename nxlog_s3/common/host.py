"""The function NXLog calls (write_data, read_data), whose release at NXLog's stop ends the
script's threads before NXLog clears the script's interpreter; under om_python it also gives
back the reference NXLog CE keeps to each event (see leaked_capsule_count).

NXLog has no shutdown hook, and at its stop it clears and deletes the script's interpreter
(libnxpython.c, nx_python_finalize) whether or not the script's threads live: a thread that
wakes after that takes a thread state NXLog freed, and NXLog dies of SIGSEGV (exit status
139; 4 stops in 7 of a script whose threads woke every half millisecond). The one thing
NXLog lets go of before, in the script's own interpreter and with its lock held, is the
function it calls: EntryPoint is that function, and its release is the stop.

NXLog CE takes the function with a new reference, then adds one of its own, and gives back
one at its stop (nx_python_init_iomodule; om_python_shutdown, im_python_shutdown): left so,
it would never be released. At its first call EntryPoint counts the references its caller
holds; where the caller is NXLog's C code (libpynxlog is loaded, and no Python frame lies
under the call) holding exactly those two, it gives one back, so that NXLog's stop releases
it. Any other caller (the stub, a script of the user's that calls this one's, a later NXLog
that holds one reference) is left as it is: giving back a reference it holds would free the
function while it is in use.
"""

import importlib.machinery
import sys
import threading
import time
import types

from nxlog_s3.common.optional import nxlog
from nxlog_s3.common.runtime import SCRIPT

try:
    import _ctypes
    import ctypes
except ImportError:  # a Python built without it: the stop stays as NXLog makes it
    _ctypes = ctypes = None

NXLOG_REFERENCES = 2  # NXLog CE's: PyObject_GetAttrString's and its own Py_INCREF
STOP_WAIT = 10.0  # seconds NXLog's stop waits for the script's threads: an upload or fetch
                  # in flight ends by then against any S3 that answers


def references_of_a_call():
    """What a call from C adds to the count of references to the object called, as its
    __call__ sees it (its own `self`, getrefcount's argument): measured, not assumed, since
    Python versions differ. map() is a caller from C that holds one reference."""
    seen = []

    class Probe(object):
        def __call__(self, _):
            seen.append(sys.getrefcount(self))

    list(map(Probe(), (None,)))
    return seen[0] - 1


def called_by_nxlog():
    """Whether NXLog's own `nxlog` is loaded, with its C library (libpynxlog, an extension
    module; the stub's stand-in is none): only then is the caller NXLog's C code, whose
    references count as NXLOG_REFERENCES."""
    loader = getattr(getattr(nxlog, "libpynxlog", None), "__loader__", None)
    return isinstance(loader, importlib.machinery.ExtensionFileLoader)


def _called_from_c():
    """Whether the function calling this one was called from C with no Python frame under
    it, as NXLog's thread calls write_data and read_data."""
    try:
        sys._getframe(2)
    except ValueError:
        return True
    return False


def _capsule_references(event):
    """How many references EVENT's capsule (c_logdata) has, as counted inside a call that
    holds it in a variable (EntryPoint.__call__ too): its attribute's, those of the
    count itself, and any other."""
    capsule = event.c_logdata
    return sys.getrefcount(capsule)


def leaked_capsule_count(event):
    """The count of references to om_python's events' capsules that shows NXLog CE's leak,
    where EVENT (the first) shows it; else None.

    NXLog CE's om_python makes each event's capsule (LogData.c_logdata) with a reference
    that it never gives back (nx_om_python_logdata_new: PyCapsule_New's own, then the one
    of Py_BuildValue's "O"): 48 bytes lost an event, some 4 GB a day at 1,000 events/s,
    whatever the script. EntryPoint gives that reference back while the event's own one
    holds the capsule: NXLog's release of the event then frees it. Only where the capsule
    holds exactly one reference more than the event's (measured against a probe, not
    assumed), so that an NXLog without the leak, or a caller that keeps the capsule, is
    left alone."""
    if ctypes is None or getattr(event, "c_logdata", None) is None:
        return None
    leaked = _capsule_references(types.SimpleNamespace(c_logdata=object())) + 1
    return leaked if _capsule_references(event) == leaked else None


def reference_dropper():
    """A function that gives back one reference to its argument, as quick a call as there
    is: ctypes' own Py_DECREF (a C function of its module, which gives back one reference
    and returns its argument with a new one: one the less once that is dropped), some five
    times as quick as Py_DecRef called through ctypes, which is the fallback where that one
    is missing or does not do exactly this to a probe."""
    dropper = getattr(_ctypes, "Py_DECREF", None)
    raiser = getattr(_ctypes, "Py_INCREF", None)
    if dropper is not None and raiser is not None:
        probe = object()
        held = sys.getrefcount(probe)
        raiser(probe)
        raised = sys.getrefcount(probe)
        dropper(probe)
        if raised == held + 1 and sys.getrefcount(probe) == held:
            return dropper
    return ctypes.PYFUNCTYPE(None, ctypes.py_object)(("Py_DecRef", ctypes.pythonapi))


class EntryPoint(object):
    """CALL (write_data, read_data) as NXLog calls it; ON_RELEASE() runs once NXLog lets it
    go at its stop (see the module's docstring). Called by NXLog CE's om_python, it also
    gives back the reference NXLog keeps to each event's capsule (leaked_capsule_count)."""

    def __init__(self, call, on_release):
        self.call, self.on_release = call, on_release
        self.first = True
        self.armed = False
        self.leaked = None  # see leaked_capsule_count
        self.decref = None

    def __call__(self, argument):
        if self.first:
            self.first = False
            held = sys.getrefcount(self) - references_of_a_call()  # as a statement of its
            # own: inside self._arm(...)'s arguments, self is counted once more
            from_c = _called_from_c()
            self._arm(held, from_c)
            if from_c and called_by_nxlog():
                self._watch_capsules(argument)
        if self.leaked is not None:  # every event's: as _capsule_references counts, inline
            capsule = argument.c_logdata
            if sys.getrefcount(capsule) == self.leaked:
                self.decref(capsule)
        call = self.call
        del self  # this frame may outlive the call (an exception's traceback reaches it
        return call(argument)  # through f_back) and must not keep this object: its release
                               # is the stop

    def _watch_capsules(self, event):
        self.leaked = leaked_capsule_count(event)
        if self.leaked is not None:
            self.decref = reference_dropper()

    def _arm(self, held, from_c):
        """Gives back the reference NXLog CE never does, where the caller is C code (FROM_C)
        holding HELD references, NXLog's: its stop then releases this object."""
        if held == NXLOG_REFERENCES and from_c and called_by_nxlog() and ctypes is not None:
            ctypes.pythonapi.Py_DecRef(ctypes.py_object(self))
            self.armed = True

    def __del__(self):
        if self.armed:
            self.armed = False
            self.on_release()


def script_threads():
    """The threads the script started (each is named after it), but the calling one."""
    return [thread for thread in threading.enumerate()
            if thread.name.startswith(SCRIPT) and thread is not threading.current_thread()]


def stop_before_nxlog_clears(stop, log, wait=STOP_WAIT):
    """STOP() (the writer's or reader's), then every thread of the script ended, within WAIT
    seconds: NXLog clears the interpreter once this returns."""
    started = time.monotonic()
    stopping = threading.Thread(target=stop, daemon=True, name="%s stop" % SCRIPT)
    stopping.start()
    for thread in [stopping] + script_threads():
        thread.join(max(0.0, started + wait - time.monotonic()))
    running = sorted(thread.name for thread in script_threads() if thread.is_alive())
    if running:
        log.warning("NXLog stops, and %s still run%s after %g s (waiting for S3): NXLog may "
                    "crash as it clears the interpreter; nothing is lost, the next start "
                    "goes on from the spool or checkpoint"
                    % (", ".join(running), "s" if len(running) == 1 else "", wait))
    else:
        log.info("NXLog stops: the script's threads ended in %.1f s"
                 % (time.monotonic() - started))


def entry_points(calls, stop, log):
    """A module's __getattr__ (PEP 562) giving NXLog, for each name of CALLS (a dict of
    functions), an EntryPoint that stops the script (see stop_before_nxlog_clears) when
    NXLog lets it go. A new one each time: NXLog takes its function once, and none but
    NXLog may hold it."""
    def release():
        stop_before_nxlog_clears(stop, log)

    def module_attribute(name):
        if name in calls:
            return EntryPoint(calls[name], release)
        raise AttributeError("module %r has no attribute %r" % (SCRIPT, name))

    return module_attribute
