"""The `nxlog` module as NXLog CE 3.x gives it to Python scripts.

Every behaviour here follows ../shared/nxlog-python-api.md; tests/test_stub_api.py pins each one.
`nxlog_stub` registers a module `nxlog` holding only the log functions below, as NXLog does;
the rest (captured logs, the flavour, the calling protocol) is the stub's own.

Two API generations exist. The current one (NXLog CE 3.x) has `logdata_new`, `set_read_timer`
and `field_names`; the legacy one (older documents and scripts) has `new_logdata`,
`add_read_event` and `get_names` instead. `set_flavour("legacy")` switches the classes that
`input_module()` and friends create, so scripts can be proven against both.
"""

import datetime
import threading
import time
import traceback
import types

CURRENT = "current"
LEGACY = "legacy"

_flavour = CURRENT
_log_lock = threading.Lock()
LOGS = []  # (level, message) of every nxlog.log_* call, in order: tests assert on it
echo = None  # set to a callable(level, message) to also print log lines (the runner does)


def _log(level, msg):
    with _log_lock:
        LOGS.append((level, str(msg)))
    if echo is not None:
        echo(level, str(msg))


def log_debug(msg):
    _log("DEBUG", msg)


def log_info(msg):
    _log("INFO", msg)


def log_warning(msg):
    _log("WARNING", msg)


def log_error(msg):
    _log("ERROR", msg)


def logged(level=None):
    """The messages logged so far, at one level or all."""
    with _log_lock:
        return [m for lv, m in LOGS if level is None or lv == level]


def log_mark():
    """Where the log stands now, for logged_since."""
    with _log_lock:
        return len(LOGS)


def logged_since(mark):
    """'LEVEL message' of each line logged since MARK (log_mark)."""
    with _log_lock:
        return ["%s %s" % entry for entry in LOGS[mark:]]


def clear_logs():
    with _log_lock:
        del LOGS[:]


def set_flavour(flavour):
    global _flavour
    if flavour not in (CURRENT, LEGACY):
        raise ValueError("flavour must be %r or %r" % (CURRENT, LEGACY))
    _flavour = flavour


def local_time_string(epoch=None):
    """A datetime field as `get_field` returns it: local time, no fraction, no zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


_now_text = [None, ""]  # (second, its local_time_string): posts of one second share it


def _now_string():
    second = int(time.time())
    if _now_text[0] != second:
        _now_text[:] = [second, local_time_string(second)]
    return _now_text[1]


class Crash(BaseException):
    """Where a real NXLog dies of SIGSEGV on the spot, logging nothing. A BaseException, so
    that no script's `except Exception` can hide it; the runner then dies of SIGSEGV too."""


class CallAbandoned(BaseException):
    """Where a real NXLog gives up the Python call it is in, at once and for good: nothing
    after it runs (no `except`, no `finally`), and an input whose read_data it gave up is
    never called again."""


INT64 = range(-2 ** 63, 2 ** 63)  # what an NXLog integer field holds
MAX_TEXT = 1048576  # bytes of UTF-8 that a string field holds
SET_FIELD_ERROR = "<built-in function set_logdata_field> returned a result with an exception set"


_names_taken = set()  # field names checked already: events repeat them


def _check_name(name):
    """A field name NXLog's C code cannot take kills it: a NUL, or a lone surrogate (which
    has no UTF-8 form)."""
    if name in _names_taken:
        return
    if "\x00" in name:
        raise Crash("set_field(%r): a field name holding a NUL kills NXLog (SIGSEGV)" % name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise Crash("set_field(%r): a field name holding a lone surrogate kills NXLog "
                    "(SIGSEGV)" % name) from None
    if len(_names_taken) < 100000:
        _names_taken.add(name)


def _stored_text(value):
    """What NXLog keeps of text: cut at its first NUL, each lone surrogate a '?'."""
    value = value.partition("\x00")[0]
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")


def _stored(value):
    """What `set_field` keeps of a value: int, bool as int, str, anything else as str()."""
    if type(value) is str:  # the common case first: the stub stands in for C code
        return value if value.isascii() and "\x00" not in value else _stored_text(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return _stored_text(str(value))


def _no_attribute(name):
    """A member the other API generation has and this one lacks: AttributeError, as in NXLog."""
    def getter(self):
        raise AttributeError("'%s' object has no attribute '%s'" % (type(self).__name__, name))
    return property(getter)


class ReadTimerError(RuntimeError):
    """NXLog asserts and breaks the input for good on a second timer in one call."""


class Module(object):
    """Every module object: a plain per-instance dict, nothing more."""

    kind = "xm_python"

    def __init__(self, name="module"):
        self._name = name
        self._data = {}

    @property
    def c_module(self):
        """What NXLog's wrapper passes to its C library (libpynxlog) for this module: in the
        stub, the module itself."""
        return self

    def __getitem__(self, key):
        return self._data[key]

    def __setitem__(self, key, value):
        self._data[key] = value

    def __contains__(self, key):
        return key in self._data


class OutputModule(Module):
    kind = "om_python"


class InputModule(Module):
    """An im_python module: creates events and schedules the next `read_data` call."""

    kind = "im_python"

    def __init__(self, name="module"):
        Module.__init__(self, name)
        self.posted = []  # events posted and not yet taken by the runner
        self.deliver = None  # or a callable(event) that takes each event as it is posted
        self.timer = None  # delay asked for during the current call, or None
        self.broken = False  # NXLog's assertion tripped: the input never runs again

    def logdata_new(self):
        return LogData(self, {"raw_event": ""})

    def set_read_timer(self, delay):
        if self.timer is not None or self.broken:
            self.broken = True
            log_error("assertion failed: set_read_timer called twice in one read_data call "
                      "(input %s stops for good)" % self._name)
            raise ReadTimerError("set_read_timer called twice in one read_data call")
        self.timer = float(delay)

    def take_posted(self):
        events, self.posted = self.posted, []
        return events


class LegacyInputModule(InputModule):
    """The older input API: `new_logdata` and `add_read_event` instead of the current names,
    and no C library underneath."""

    logdata_new = _no_attribute("logdata_new")
    set_read_timer = _no_attribute("set_read_timer")
    c_module = _no_attribute("c_module")

    def new_logdata(self):
        return LegacyLogData(self, {"raw_event": ""})

    def add_read_event(self, delay):
        return InputModule.set_read_timer(self, delay)


class LogData(object):
    """One event. `fields` may hold any type NXLog has (memoryview for binary fields)."""

    def __init__(self, module, fields=None):
        self.module = module
        self._fields = dict(fields or {})

    def get_field(self, name):
        return self._fields.get(name)

    def set_field(self, name, value):
        """As NXLog's: a name it cannot take is a Crash; an integer beyond 64 bits is stored
        as -1 and raises SystemError; text of more than MAX_TEXT bytes is logged and
        abandons the call (all checked under NXLog CE 3.1.15)."""
        _check_name(name)
        if type(value) is str and len(value) > MAX_TEXT // 4:
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > MAX_TEXT:
                log_error("oversized string (%d), limit is %d bytes" % (size, MAX_TEXT))
                raise CallAbandoned("set_field(%r): text of %d bytes" % (name, size))
        if type(value) is int and value not in INT64:
            self._fields[name] = -1
            raise SystemError(SET_FIELD_ERROR)
        self._fields[name] = _stored(value)
        return True

    def delete_field(self, name):
        return self._fields.pop(name, _MISSING) is not _MISSING

    def field_names(self):
        return list(self._fields)

    @property
    def c_logdata(self):
        """What NXLog's wrapper passes to its C library for this event: in the stub, the
        event itself."""
        return self

    def post(self):
        if not isinstance(self.module, InputModule):
            log_error("Trying to post logdata from non-input module")
            return
        # NXLog adds these to an event that lacks them, and keeps those set before
        # (nx_module_add_logdata_input; checked under NXLog CE 3.1.15)
        self._fields.setdefault("EventReceivedTime", _now_string())
        self._fields.setdefault("SourceModuleName", self.module._name)
        self._fields.setdefault("SourceModuleType", "im_python")
        if self.module.deliver is not None:
            self.module.deliver(self)
        else:
            self.module.posted.append(self)

    def fields(self):
        """All fields as a dict (the stub's own accessor, for the runner and tests)."""
        return dict(self._fields)


class LegacyLogData(LogData):
    field_names = _no_attribute("field_names")
    c_logdata = _no_attribute("c_logdata")

    def get_names(self):
        return list(self._fields)


_MISSING = object()


def _post_logdata(c_module, c_logdata):
    c_logdata.module = c_module
    c_logdata.post()


# NXLog CE's C library under its `nxlog` wrapper (nxlog.libpynxlog), which the scripts call
# directly (nxlog_s3/common/events.py): each call does what the wrapper's method does. A
# namespace, not a module: nxlog_s3/common/host.py tells NXLog's own by its loader.
LIBPYNXLOG = types.SimpleNamespace(
    get_logdata_field=lambda c_module, c_logdata, name: c_logdata.get_field(name),
    get_logdata_field_names=lambda c_module, c_logdata: c_logdata.field_names(),
    set_logdata_field=lambda c_module, c_logdata, name, value: c_logdata.set_field(name, value),
    logdata_new=lambda: LogData(None, {"raw_event": ""}),
    post_logdata=_post_logdata)


def call_read_data(function, module):
    """One read_data call as NXLog makes it; returns (delay of the next call or None, events).

    None means NXLog will not call again: nothing was scheduled, the timer assertion
    tripped, or NXLog gave up the call (CallAbandoned). An exception is logged as NXLog
    logs it; a timer set before it still counts.
    """
    module.timer = None
    try:
        function(module)
    except CallAbandoned:
        module.broken = True  # NXLog never calls it again
    except Exception:
        log_error("Python ERROR: %s" % traceback.format_exc().rstrip())
    delay = None if module.broken else module.timer
    return delay, module.take_posted()


def call_write_data(function, event):
    """One write_data call as NXLog makes it: an exception is logged and drops the event.

    Returns whether the event was taken.
    """
    try:
        function(event)
    except Exception:
        log_error("Python ERROR: %s" % traceback.format_exc().rstrip())
        return False
    return True


def input_module(name="in"):
    return (LegacyInputModule if _flavour == LEGACY else InputModule)(name)


def output_module(name="out"):
    return OutputModule(name)


def new_event(module, fields):
    """An event as NXLog hands it to a module, with fields of any NXLog type."""
    return (LegacyLogData if _flavour == LEGACY else LogData)(module, fields)
