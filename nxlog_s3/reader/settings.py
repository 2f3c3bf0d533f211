"""The reader's settings, checked together."""

import re

from nxlog_s3.common.runtime import SCRIPT
from nxlog_s3.common.settings import (
    ConfigError,
    Settings,
    _bucket,
    _choice,
    _flag,
    _metrics_file,
    _number,
    _path,
    _server,
)


def _servers(text):
    """SERVER: one name, names with commas, or * for every server in the bucket."""
    if text.strip() == "*":
        return "*"
    names = [_server(name) for name in text.split(",")] if text.strip() else [_server("")]
    return sorted(set(names))


def _queue_url(text):
    """NOTIFY_QUEUE: an SQS queue's URL, or empty."""
    value = text.strip()
    if value and not re.match(r"^https?://[^/\s]+/[0-9]+/[A-Za-z0-9_-]{1,80}(\.fifo)?$",
                              value):
        raise ValueError("an SQS queue URL such as https://sqs.us-east-1.amazonaws.com/"
                         "123456789012/nxlog-s3")
    return value


def _move_prefix(text):
    value = text.strip()
    if value and (not value.endswith("/") or value.startswith("/") or ".." in value):
        raise ValueError("a prefix such as read/ (ending with '/')")
    return value


class ReaderSettings(Settings):
    """The settings at the top of s3_read.py, parsed; also CHECKPOINT's default and
    SEAL_EVERY, the seconds of key time between two rewrites of the checkpoint's .late
    file."""

    SPEC = (
        ("BUCKET", _bucket), ("SERVER", _servers), ("CHECKPOINT", _path),
        ("POLL_INTERVAL", _number(float, 0.01)), ("LOOKBACK", _number(int, 0)),
        ("LATE_HORIZON", _number(int, 0)), ("LATE_INTERVAL", _number(float, 0)),
        ("SWEEP_INTERVAL", _number(float, 0)), ("MAX_AHEAD", _number(int, 0)),
        ("KEY_TIME", _choice("utc", "local")), ("START_AT", _choice("beginning", "now")),
        ("MAXKEYS", _number(int, 1, 1000)), ("MAX_OBJECTS_PER_CALL", _number(int, 1)),
        ("MAX_SECONDS_PER_CALL", _number(float, 0.01)), ("FETCH_THREADS", _number(int, 1, 64)),
        ("MAX_ATTEMPTS", _number(int, 1)), ("ALLOW_PICKLE", _flag),
        ("MAX_EVENT_BYTES", _number(int, 0)), ("MAX_EXPANSION", _number(int, 1)),
        ("RAW_LINES", _flag),
        ("AFTER_READ", _choice("keep", "delete", "move")), ("MOVE_PREFIX", _move_prefix),
        ("RETRY_MODE", _choice("standard", "adaptive")), ("RETRY_ATTEMPTS", _number(int, 1)),
        ("TLS_VERIFY", _flag), ("CONNECT_TIMEOUT", _number(float, 0.1)),
        ("READ_TIMEOUT", _number(float, 0.1)), ("METRICS_FILE", _metrics_file),
        ("COORDINATION", _choice("none", "s3")), ("READER_NAME", _server),
        ("LEASE_SECONDS", _number(int, 6, 3600)), ("NOTIFY_QUEUE", _queue_url),
        ("FULL_POLL_INTERVAL", _number(float, 1)))

    def check(self):
        if self.COORDINATION == "s3" and self.CHECKPOINT:
            raise ConfigError("%s: CHECKPOINT=%r has no use with COORDINATION=s3: the "
                              "positions are kept in the bucket, beside the leases (leave "
                              "CHECKPOINT empty)" % (SCRIPT, self.CHECKPOINT))
        self.CHECKPOINT = self.CHECKPOINT or self.named_after_instance("lastkey", ".log")
        self.SEAL_EVERY = max(self.LOOKBACK, 60)
        if self.AFTER_READ == "move" and not self.MOVE_PREFIX:
            raise ConfigError("%s: AFTER_READ=move needs MOVE_PREFIX, where the objects go"
                              % SCRIPT)
        if self.MOVE_PREFIX and self.SERVER != "*" and any(
                self.MOVE_PREFIX.startswith(name + "/") for name in self.SERVER):
            raise ConfigError("%s: MOVE_PREFIX=%r is inside a SERVER's own prefix: moved "
                              "objects would be listed again" % (SCRIPT, self.MOVE_PREFIX))
        if self.MOVE_PREFIX.count("/") > 1 and self.SERVER == "*":
            raise ConfigError("%s: with SERVER=*, every first segment of a key is a server, so "
                              "MOVE_PREFIX=%r would move objects into one server's prefix: use "
                              "one segment, such as read/" % (SCRIPT, self.MOVE_PREFIX))
        if self.LATE_HORIZON < self.LOOKBACK:
            raise ConfigError("%s: LATE_HORIZON=%d is shorter than LOOKBACK=%d: the re-listing "
                              "for late objects must reach at least as far back as each poll "
                              "does" % (SCRIPT, self.LATE_HORIZON, self.LOOKBACK))
