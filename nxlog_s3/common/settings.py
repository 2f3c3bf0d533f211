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


def _server(text):
    """A key prefix that stays one path segment: no '/', no '..', no control characters."""
    value = text.strip() or socket.gethostname().split(".")[0]
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
    if not text.strip():
        raise ValueError("must name a file or folder")
    return text.strip()


def _metrics_file(text):
    """METRICS_FILE: empty (none), or a file node_exporter's textfile collector reads."""
    value = text.strip()
    if value and not value.endswith(".prom"):
        raise ValueError("node_exporter's textfile collector reads only files named *.prom")
    return value


def _flag_name(name):
    return name.lower().replace("_", "-")


class Settings(object):
    """Every setting of a script, parsed and checked once: an attribute named as the setting
    (BUCKET, SERVER, ...). NXLOG_S3_<NAME> in ENVIRON wins over DEFAULTS, the values at the
    top of the script SOURCE. A bad value raises ConfigError naming where it came from."""

    SPEC = ()  # (NAME, parser) for each setting: the script's subclass says

    def __init__(self, defaults, environ, source, flags=None):
        for name, parse in self.SPEC:
            text, where = self._source(name, defaults, environ, source, flags or {})
            try:
                setattr(self, name, parse(text))
            except ValueError as exc:
                raise ConfigError("%s: %s=%r is not valid: %s"
                                  % (SCRIPT, where, text, exc)) from None
        self.check()

    @staticmethod
    def _source(name, defaults, environ, source, flags):
        """NAME's text, and where it came from: a command's flag, the environment, the top
        of the script, in that order."""
        if flags.get(name) is not None:
            return flags[name], "--" + _flag_name(name)
        variable = "NXLOG_S3_" + name
        if variable in environ:
            return environ[variable], variable
        return str(defaults[name]), "%s at the top of %s" % (name, source)

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
