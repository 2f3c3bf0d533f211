"""Parses the subset of nxlog.conf that the examples in conf/ use.

Supported: `define NAME VALUE` and `%NAME%`, `#` comment lines, the global directives a
complete nxlog.conf needs (PidFile, SpoolDir, CacheDir, LogFile, LogLevel, Moduledir),
`<Input>`, `<Output>` and `<Route>` blocks, and per module the directives NXLog's own modules
take for this job. Anything else is refused with the file and line, so a typo never passes
silently.
"""

import re

MODULE_DIRECTIVES = {
    "im_file": {"file", "savepos", "readfromlast"},
    "om_file": {"file"},
    "im_python": {"pythoncode", "call"},
    "om_python": {"pythoncode", "call"},
}
REQUIRED = {"im_file": ("file",), "om_file": ("file",),
            "im_python": ("pythoncode",), "om_python": ("pythoncode",)}
BLOCK_KINDS = {"input": "Input", "output": "Output", "route": "Route"}
GLOBAL_DIRECTIVES = {"pidfile", "spooldir", "cachedir", "logfile", "loglevel", "moduledir"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
INPUT_MODULES = {"im_file", "im_python"}

_OPEN = re.compile(r"^<\s*(\w+)\s+([^>\s]+)\s*>$")
_CLOSE = re.compile(r"^<\s*/\s*(\w+)\s*>$")
_DEFINE = re.compile(r"^define\s+(\w+)\s+(.*)$", re.IGNORECASE)
_REFERENCE = re.compile(r"%(\w+)%")


class ConfError(Exception):
    def __init__(self, path, lineno, message):
        Exception.__init__(self, "%s:%d: %s" % (path, lineno, message))


class Instance(object):
    """One <Input> or <Output> block: its module and directives (lower-cased names)."""

    def __init__(self, kind, name, path, lineno):
        self.kind, self.name, self.path, self.lineno = kind, name, path, lineno
        self.directives = {}  # name -> (value, lineno)

    @property
    def module(self):
        return self.directives["module"][0].lower()

    def get(self, name, default=None):
        return self.directives.get(name, (default, None))[0]

    def flag(self, name, default):
        value = self.get(name)
        if value is None:
            return default
        if value.upper() not in ("TRUE", "FALSE"):
            raise ConfError(self.path, self.directives[name][1], "%s takes TRUE or FALSE" % name)
        return value.upper() == "TRUE"


class Config(object):
    def __init__(self):
        self.instances = {}  # name -> Instance, in file order
        self.routes = []  # (route name, [input names], [output names])
        self.globals = {}  # lower-cased global directive -> its value, unquoted


def unquote(value):
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse(path, overrides=None):
    """Reads CONF; `overrides` replaces the values of its `define`s (the runner's --define)."""
    with open(path) as handle:
        lines = handle.read().splitlines()
    parser = _Parser(path, dict(overrides or {}))
    for lineno, line in enumerate(lines, 1):
        parser.line(lineno, line.strip())
    return parser.finish(len(lines))


class _Parser(object):
    def __init__(self, path, overrides):
        self.path = path
        self.overrides = overrides
        self.defines = {}
        self.config = Config()
        self.block = None  # (kind, name, lineno, Instance or route directives)

    def error(self, lineno, message):
        return ConfError(self.path, lineno, message)

    def expand(self, lineno, text):
        def value_of(match):
            if match.group(1) not in self.defines:
                raise self.error(lineno, "%%%s%% is not defined" % match.group(1))
            return self.defines[match.group(1)]
        return _REFERENCE.sub(value_of, text)

    def line(self, lineno, text):
        if not text or text.startswith("#"):
            return
        define = _DEFINE.match(text)
        if define:
            name = define.group(1)
            value = self.expand(lineno, define.group(2).strip())
            self.defines[name] = self.overrides.get(name, value)
            return
        text = self.expand(lineno, text)
        opening, closing = _OPEN.match(text), _CLOSE.match(text)
        if opening:
            self.open_block(lineno, opening.group(1), opening.group(2))
        elif closing:
            self.close_block(lineno, closing.group(1))
        elif self.block is None:
            self.global_directive(lineno, text)
        else:
            self.directive(lineno, text)

    def global_directive(self, lineno, text):
        parts = text.split(None, 1)
        name, value = parts[0].lower(), unquote(parts[1].strip()) if len(parts) > 1 else ""
        if name not in GLOBAL_DIRECTIVES:
            raise self.error(lineno, "unknown directive %r outside a block" % parts[0])
        if not value:
            raise self.error(lineno, "%s needs a value" % parts[0])
        if name == "loglevel" and value.upper() not in LOG_LEVELS:
            raise self.error(lineno, "LogLevel takes one of %s" % ", ".join(LOG_LEVELS))
        self.config.globals[name] = value

    def open_block(self, lineno, kind, name):
        if self.block is not None:
            raise self.error(lineno, "<%s> inside <%s %s>" % (kind, self.block[0], self.block[1]))
        if kind.lower() not in BLOCK_KINDS:
            raise self.error(lineno, "unknown block <%s>" % kind)
        kind = BLOCK_KINDS[kind.lower()]
        if kind != "Route" and name in self.config.instances:
            raise self.error(lineno, "a module instance named %r exists already" % name)
        body = {} if kind == "Route" else Instance(kind, name, self.path, lineno)
        self.block = (kind, name, lineno, body)

    def close_block(self, lineno, kind):
        if self.block is None or self.block[0].lower() != kind.lower():
            raise self.error(lineno, "</%s> without its opening tag" % kind)
        kind, name, opened_at, body = self.block
        self.block = None
        if kind == "Route":
            self.add_route(name, opened_at, body)
        else:
            self.add_instance(body)

    def directive(self, lineno, text):
        parts = text.split(None, 1)
        name, value = parts[0].lower(), (parts[1].strip() if len(parts) > 1 else "")
        kind, block_name, _, body = self.block
        if kind == "Route":
            if name != "path":
                raise self.error(lineno, "unknown directive %r in <Route %s>"
                                 % (parts[0], block_name))
            body["path"] = (value, lineno)
            return
        if name != "module":
            module = body.get("module")
            allowed = MODULE_DIRECTIVES.get(module.lower(), set()) if module else set()
            if name not in allowed:
                raise self.error(lineno, "unknown directive %r for module %s in <%s %s>"
                                 % (parts[0], module or "(none yet)", kind, block_name))
        elif value.lower() not in MODULE_DIRECTIVES:
            raise self.error(lineno, "unknown module %r (supported: %s)"
                             % (value, ", ".join(sorted(MODULE_DIRECTIVES))))
        body.directives[name] = (value, lineno)

    def add_instance(self, instance):
        if "module" not in instance.directives:
            raise self.error(instance.lineno, "<%s %s> has no Module"
                             % (instance.kind, instance.name))
        is_input = instance.module in INPUT_MODULES
        if is_input != (instance.kind == "Input"):
            raise self.error(instance.lineno, "%s cannot be used in an <%s> block"
                             % (instance.module, instance.kind))
        for name in REQUIRED[instance.module]:
            if name not in instance.directives:
                raise self.error(instance.lineno, "<%s %s> needs a %s directive"
                                 % (instance.kind, instance.name, name))
        self.config.instances[instance.name] = instance

    def add_route(self, name, lineno, body):
        if "path" not in body:
            raise self.error(lineno, "<Route %s> has no Path" % name)
        value, path_line = body["path"]
        ends = value.split("=>")
        if len(ends) != 2:
            raise self.error(path_line, "Path must read 'inputs => outputs'")
        inputs, outputs = ([n.strip() for n in end.split(",") if n.strip()] for end in ends)
        for names, kind in ((inputs, "Input"), (outputs, "Output")):
            for instance_name in names:
                instance = self.config.instances.get(instance_name)
                if instance is None or instance.kind != kind:
                    raise self.error(path_line, "Path names %r, which is no <%s> block above"
                                     % (instance_name, kind))
        self.config.routes.append((name, inputs, outputs))

    def finish(self, last_line):
        if self.block is not None:
            raise self.error(last_line, "<%s %s> is not closed" % (self.block[0], self.block[1]))
        if not self.config.routes:
            raise self.error(last_line, "no <Route>: nothing would move")
        return self.config
