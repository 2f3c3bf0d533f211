"""Runs the routes of an nxlog.conf the way NXLog does, with the stub's `nxlog` module.

Each `PythonCode` is imported as its own module object (its own globals, as NXLog's
per-instance sub-interpreters give), with its folder on `sys.path`. `im_python` gets its first
`read_data` call at start and later calls only when the previous one scheduled them; an
exception in `write_data` is logged and drops that event. The run ends once no input produced
an event for `idle` seconds and every file input is at its end; then the stop() of each
script NXLog has called runs, as NXLog's stop makes these scripts stop, and what they log is
in the summary.
"""

import importlib.util
import json
import os
import sys
import time
import traceback

from . import api
from .conf import unquote

TICK = 0.02  # longest sleep between two looks at the inputs
FILE_BATCH = 1000  # lines an im_file instance reads before the others get a turn
LOG_QUEUE_SIZE = 100  # NXLog's default LogqueueSize: events an output's queue holds before
                      # flow control stops the inputs that feed it


class LoadError(Exception):
    """A PythonCode script that NXLog could not load: the module does not start."""


def load_script(path, instance_name):
    """Imports PYTHONCODE as NXLog does: its folder on sys.path, named after its basename."""
    path = os.path.abspath(path)
    if not path.endswith(".py"):
        raise LoadError("%s: PythonCode must name a .py file: %s" % (instance_name, path))
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    script = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(script)
    except Exception as exc:
        raise LoadError("%s: cannot load %s: %s: %s"
                        % (instance_name, path, type(exc).__name__, exc)) from exc
    return script


def _started_script(code, instance_name):
    """The script loaded as NXLog loads it, or None if it raised at import: NXLog then logs
    the error and its frames, cannot import the module, trips an assertion of its own, and
    runs on without this module (see ../shared/nxlog-python-api.md)."""
    try:
        return load_script(code, instance_name)
    except LoadError as error:
        if error.__cause__ is None:
            raise
        exc = error.__cause__
        api.log_error("Python ERROR: %s: %s" % (type(exc).__name__, exc))
        frames = traceback.extract_tb(exc.__traceback__)
        path = os.path.abspath(code)
        frames = frames[next((at for at, frame in enumerate(frames) if frame.filename == path),
                             0):]  # from the script's own frame on, as NXLog shows them
        for number, frame in enumerate(reversed(frames)):
            api.log_error("#%d in %s at %s:%d" % (number, frame.name, frame.filename,
                                                  frame.lineno))
        api.log_error("Couldn't import python module '%s'"
                      % os.path.splitext(os.path.basename(code))[0])
        api.log_error('### ASSERTION FAILED at line 503 in libnxpython.c/nx_python_init(): '
                      '"conf->thread_state_key == NULL" ###')
        return None


def _script_function(script, name):
    function = getattr(script, name, None)
    if not callable(function):
        api.log_error("'%s' func not found!" % name)
        return None
    return function


class FileInput(object):
    """im_file: one event per complete line; SavePos/ReadFromLast as NXLog defines them."""

    def __init__(self, instance, positions):
        self.name = instance.name
        self.path = unquote(instance.get("file"))
        self.save_pos = instance.flag("savepos", True)
        self.positions = positions
        read_from_last = instance.flag("readfromlast", True)
        self.offset = positions.get(self.path) if self.save_pos else None
        if self.offset is None:
            exists = os.path.exists(self.path)
            self.offset = os.path.getsize(self.path) if read_from_last and exists else 0
        self.count = 0

    def describe(self):
        return "im_file %s: %d events" % (self.path, self.count)

    def pump(self, now):
        if not os.path.exists(self.path):
            return []
        events = []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            for _ in range(FILE_BATCH):
                line = handle.readline()
                if not line.endswith(b"\n"):
                    break
                self.offset += len(line)
                text = line.rstrip(b"\r\n").decode("utf-8", "replace")
                events.append({"raw_event": text,
                               "EventReceivedTime": api.local_time_string(),
                               "SourceModuleName": self.name,
                               "SourceModuleType": "im_file"})
        self.count += len(events)
        if self.save_pos:
            self.positions[self.path] = self.offset
        return events

    def busy(self, now):
        return os.path.exists(self.path) and os.path.getsize(self.path) > self.offset

    def describe_held(self):
        return "im_file %s: %d events, held back by flow control" % (self.path, self.count)

    def next_due(self):
        return None


class PythonInput(object):
    """im_python: read_data at start, then only when the previous call set a timer."""

    def __init__(self, instance):
        self.name = instance.name
        self.code = instance.get("pythoncode")
        self.module = api.input_module(self.name)
        self.script = script = _started_script(self.code, self.name)
        self.function = script and _script_function(script, instance.get("call", "read_data"))
        self.due = time.monotonic() if self.function else None
        self.calls = 0
        self.count = 0

    def describe(self):
        state = "stopped for good" if self.function and self.due is None else "polling"
        return "im_python %s: %d read_data calls, %d events (%s)" % (
            self.code, self.calls, self.count, state)

    def pump(self, now):
        if self.due is None or now < self.due:
            return []
        self.calls += 1
        delay, posted = api.call_read_data(self.function, self.module)
        if delay is None:
            api.log_error("input %s scheduled no further read_data call: it stops for good"
                          % self.name)
            self.due = None
        else:
            self.due = time.monotonic() + delay
        events = [event.fields() for event in posted]
        self.count += len(events)
        return events

    def busy(self, now):
        return False

    def describe_held(self):
        return self.describe() + ", held back by flow control"

    def next_due(self):
        return self.due


class FileOutput(object):
    """om_file: writes each event's raw_event as one line."""

    @staticmethod
    def queue_full():
        return False

    def __init__(self, instance):
        self.path = unquote(instance.get("file"))
        self.count = 0
        self.handle = open(self.path, "a", encoding="utf-8", errors="surrogateescape")

    def describe(self):
        return "om_file %s: %d events written" % (self.path, self.count)

    def write(self, fields):
        self.handle.write("%s\n" % (fields.get("raw_event") or ""))
        self.count += 1

    def flush(self):
        self.handle.flush()

    def close(self):
        self.handle.close()


class PythonOutput(object):
    """om_python: write_data(event) per event; an exception drops that event. A script that
    raised at import never takes an event: they wait in the module's queue."""

    def __init__(self, instance):
        self.code = instance.get("pythoncode")
        self.module = api.output_module(instance.name)
        self.script = script = _started_script(self.code, instance.name)
        self.deaf = script is None
        self.function = script and _script_function(script, instance.get("call", "write_data"))
        self.count = 0
        self.dropped = 0
        self.queued = 0

    def describe(self):
        if self.deaf:
            return "om_python %s: not started, %d events wait in its queue" % (
                self.code, self.queued)
        return "om_python %s: %d events written, %d dropped" % (
            self.code, self.count - self.dropped, self.dropped)

    def queue_full(self):
        return self.deaf and self.queued >= LOG_QUEUE_SIZE

    @property
    def calls(self):
        """The write_data calls made: one for every event taken."""
        return self.count if self.function is not None else 0

    def write(self, fields):
        if self.deaf:
            self.queued += 1
            return
        self.count += 1
        if self.function is None or not api.call_write_data(
                self.function, api.new_event(self.module, fields)):
            self.dropped += 1

    def flush(self):
        pass

    def close(self):
        pass


class Runner(object):
    def __init__(self, config, cache_dir=".", idle=2.0):
        self.idle = idle
        self.at_stop = []  # what the scripts logged as the stub stopped them
        self.cache_path = os.path.join(cache_dir, "nxlog_stub.positions.json")
        self.positions = self._load_positions()
        self.routes = config.routes
        self.inputs, self.outputs = {}, {}
        for instance in config.instances.values():
            if instance.kind == "Input":
                self.inputs[instance.name] = self._make_input(instance)
            else:
                self.outputs[instance.name] = self._make_output(instance)

    def _make_input(self, instance):
        if instance.module == "im_file":
            return FileInput(instance, self.positions)
        return PythonInput(instance)

    @staticmethod
    def _make_output(instance):
        return FileOutput(instance) if instance.module == "om_file" else PythonOutput(instance)

    def _load_positions(self):
        try:
            with open(self.cache_path) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {}

    def _save_positions(self):
        with open(self.cache_path, "w") as handle:
            json.dump(self.positions, handle)

    def _held_back(self, input_name):
        """Flow control: an input whose events an output's full queue cannot take waits."""
        return any(self.outputs[output].queue_full() for _, inputs, outputs in self.routes
                   if input_name in inputs for output in outputs)

    def _route(self, input_name, events):
        for _, inputs, outputs in self.routes:
            if input_name in inputs:
                for output_name in outputs:
                    output = self.outputs[output_name]
                    for fields in events:
                        output.write(dict(fields))
                    output.flush()

    def _sleep_until_next(self, now):
        dues = [source.next_due() for source in self.inputs.values()]
        wake = min([due for due in dues if due is not None] + [now + TICK])
        time.sleep(max(0.0, wake - now))

    def run(self):
        last_event = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                moved = False
                for name, source in self.inputs.items():
                    events = [] if self._held_back(name) else source.pump(now)
                    if events:
                        moved = True
                        self._route(name, events)
                if moved or any(source.busy(now) and not self._held_back(name)
                                for name, source in self.inputs.items()):
                    last_event = time.monotonic()
                elif now - last_event >= self.idle:
                    return
                else:
                    self._sleep_until_next(now)
        finally:
            self._stop_scripts()
            for output in self.outputs.values():
                output.close()
            self._save_positions()

    def _stop_scripts(self):
        """What NXLog's stop does to a Python module: it lets go of the function it calls,
        which these scripts turn into their stop() once NXLog has called it
        (nxlog_s3/common/host.py); the stub calls stop() where a script has one and its
        function was called. What the scripts log then is kept for the summary: what they
        left behind, and why."""
        mark = api.log_mark()
        for module in list(self.inputs.values()) + list(self.outputs.values()):
            stop = getattr(getattr(module, "script", None), "stop", None)
            if callable(stop) and module.calls:
                try:
                    stop()
                except Exception as exc:  # NXLog's release ignores it; the summary says so
                    api.log_error("%s: stop() raised %s: %s" % (module.code, type(exc).__name__,
                                                                exc))
        self.at_stop = api.logged_since(mark)

    def report(self):
        lines = ["%s (%s)" % (name, source.describe_held() if self._held_back(name) else
                              source.describe()) for name, source in self.inputs.items()]
        lines += ["%s (%s)" % (name, sink.describe()) for name, sink in self.outputs.items()]
        return lines + ["at the stop: %s" % line for line in self.at_stop]
