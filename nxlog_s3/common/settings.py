"""Settings: each parsed and checked once, from NXLOG_S3_<NAME> or the top of the script."""

import os
import re
import socket

from nxlog_s3.common.runtime import SCRIPT


class ConfigError(ValueError):
    """A setting that can never work: NXLog does not start, and one line names the setting."""


def _choice(*allowed):
    def parse(text):
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError("use one of: %s" % ", ".join(allowed))
        return value
    return parse


def _number(kind, minimum, maximum=None):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError("not a number") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError("must be from %s to %s" % (minimum, maximum) if maximum is not None
                             else "must be at least %s" % minimum)
        return value
    return parse


def _bucket(text):
    value = text.strip()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$", value):
        raise ValueError("not a bucket name")
    return value


def default_server():
    """SERVER when none is set: this host's name, without its domain."""
    return socket.gethostname().split(".")[0]


def _server(text):
    """A key prefix that stays one path segment: no '/', no '..', no control characters."""
    value = text.strip() or default_server()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$", value) or ".." in value:
        raise ValueError("use letters, digits, '.', '_' and '-' only, starting with a letter "
                         "or digit (it becomes the key prefix SERVER/)")
    return value


def _flag(text):
    value = text.strip().lower()
    if value not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        raise ValueError("use true or false")
    return value in ("true", "yes", "1", "on")


def _path(text):
    """A file or folder; empty: the script's own, named after its instance (the subclass's
    check() says which)."""
    return text.strip()


def _metrics_file(text):
    """METRICS_FILE: empty (none), or a file node_exporter's textfile collector reads."""
    value = text.strip()
    if value and not value.endswith(".prom"):
        raise ValueError("node_exporter's textfile collector reads only files named *.prom")
    return value


def _flag_name(name):
    return name.lower().replace("_", "-")


def instance_of(source):
    """The instance that the script's file name SOURCE names: 'web' for s3_write_web.py or
    s3_read_web.py (often a link to s3_write.py or s3_read.py: NXLog imports a script under
    its file name); '' for any other name. Its settings come from NXLOG_S3_WEB_<NAME> first."""
    stem = os.path.splitext(os.path.basename(source))[0]
    match = re.match(r"^s3_(?:write|read)_(.*)$", stem)
    if not match:
        return ""
    if not re.match(r"^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*$", match.group(1)):
        raise ConfigError("%s: the file name %s names an instance, %r, that is not usable in "
                          "the variables NXLOG_S3_<INSTANCE>_<NAME>: use letters and digits "
                          "(s3_write_web.py, s3_read_auth2.py)" % (SCRIPT, source,
                                                                    match.group(1)))
    return match.group(1)


def instance_variable(instance, name):
    """The environment variable that sets NAME for INSTANCE alone."""
    return "NXLOG_S3_%s_%s" % (instance.upper(), name)


class Settings(object):
    """Every setting of a script, parsed and checked once: an attribute named as the setting
    (BUCKET, SERVER, ...). NXLOG_S3_<NAME> in ENVIRON wins over DEFAULTS, the values at the
    top of the script SOURCE; for an instance (INSTANCE, named by SOURCE's file name: see
    instance_of), NXLOG_S3_<INSTANCE>_<NAME> wins over both. A bad value raises ConfigError
    naming where it came from."""

    SPEC = ()  # (NAME, parser) for each setting: the script's subclass says

    def __init__(self, defaults, environ, source, flags=None):
        self.INSTANCE = instance_of(source)
        for name, parse in self.SPEC:
            text, where = self._source(name, defaults, environ, source, flags or {})
            try:
                setattr(self, name, parse(text))
            except ValueError as exc:
                raise ConfigError("%s: %s=%r is not valid: %s"
                                  % (SCRIPT, where, text, exc)) from None
        self.check()

    def _source(self, name, defaults, environ, source, flags):
        """NAME's text, and where it came from: a command's flag, the environment (the
        instance's variable first), the top of the script, in that order."""
        if flags.get(name) is not None:
            return flags[name], "--" + _flag_name(name)
        for variable in self.variables(name):
            if variable in environ:
                return environ[variable], variable
        return str(defaults[name]), "%s at the top of %s" % (name, source)

    def variables(self, name):
        """The environment variables that set NAME, the one that wins first."""
        common = "NXLOG_S3_" + name
        return [instance_variable(self.INSTANCE, name), common] if self.INSTANCE else [common]

    def describe_instance(self):
        """'instance web (NXLOG_S3_WEB_<NAME> first), ' for an instance, else ''."""
        return "instance %s (%s first), " % (self.INSTANCE, instance_variable(
            self.INSTANCE, "<NAME>")) if self.INSTANCE else ""

    def named_after_instance(self, stem, suffix):
        """A default file name: STEM + SUFFIX, or STEM_<instance> + SUFFIX for an instance,
        so that instances of one script never share it."""
        return "%s%s%s" % (stem, "_" + self.INSTANCE if self.INSTANCE else "", suffix)

    @classmethod
    def defaults_in(cls, namespace):
        """The values at the top of the script: its module's NAMESPACE (globals())."""
        return {name: namespace[name] for name, _ in cls.SPEC}

    @classmethod
    def of_script(cls, namespace, source, flags=None):
        """The settings of the script SOURCE, whose module's NAMESPACE holds the values at
        its top, as NXLog or a command (FLAGS) finds them."""
        return cls(cls.defaults_in(namespace), os.environ, source, flags)

    def check(self):
        """Raises ConfigError for settings that are each valid but cannot work together."""

    def owner(self):
        """The ExpectedBucketOwner argument, where the settings name one."""
        owner = getattr(self, "EXPECTED_BUCKET_OWNER", "")
        return {"ExpectedBucketOwner": owner} if owner else {}
