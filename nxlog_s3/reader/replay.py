"""`replay`: a server's events in a time range, in order."""

import errno
import json
import os
import sys

from nxlog_s3.common.errors import MISSING, kind_of, object_failure
from nxlog_s3.common.files import NOFOLLOW
from nxlog_s3.common.objects import instant, json_value, raw_bytes, utc_text
from nxlog_s3.common.runtime import EXIT_WARNED, NXLOG, SCRIPT, count
from nxlog_s3.common.s3 import quoted
from nxlog_s3.reader.commands import (
    Between,
    Progress,
    _range_text,
    _unreported,
    in_order,
    prefix_url,
    servers_without_objects,
)
from nxlog_s3.reader.decode import Decoder
from nxlog_s3.reader.listing import LANDING_MARGIN


def _jsonl_line(fields):
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"),
                      default=json_value).encode("utf-8", "surrogatepass") + b"\n"


def _raw_line(fields):
    """raw_event as its line; an event without one as JSON, so that nothing is left out."""
    raw = fields.get("raw_event")
    if raw is None:
        return _jsonl_line(fields)
    return raw_bytes(raw) + b"\n"


class Replay(object):
    """The events of one server received from START to before END, decoded as the reader
    decodes them (but datetime fields as stored, with their zone), in the order it posts
    them (key order), written by LINE(fields) to OUTPUT. An event's time is its
    EventReceivedTime, or its object's key time where it has none. Objects keyed up to MARGIN
    seconds before START are looked at too (a batch is keyed at its first event), those S3
    stored before START (less LANDING_MARGIN) passed over. An object that cannot be decoded,
    or is deleted meanwhile, is named in a warning and counted in MISSED."""

    def __init__(self, parts, server, start, end, margin, line, output):
        self.parts, self.server, self.start, self.end = parts, server, start, end
        self.margin, self.line, self.output = margin, line, output
        self.decoder = Decoder(parts.settings, parts.log)
        self.events = self.objects = self.missed = 0

    def run(self, progress):
        items = Between(self.parts, self.server, self.start - self.margin, self.end,
                        report=_unreported, keep=lambda item: item.epoch >= self.start or
                        item.modified >= self.start - LANDING_MARGIN)
        fetcher = self.parts.fetcher
        for item, future in in_order(self.parts, items):
            try:
                response = (future or fetcher.get(item)).result()
            except Exception as exc:  # an object's failure is that object's alone
                self._missed(item, "it was deleted while the replay ran"
                             if kind_of(exc) == MISSING else
                             "it cannot be fetched (%s)" % object_failure(exc))
                continue
            self._write_events(item, response)
            progress.show(item.epoch, self.events)

    def _missed(self, item, why):
        self.missed += 1
        self.parts.log.warning("%s: %s; its events are not in the replay" % (
            quoted(self.parts.settings.BUCKET, item.key), why))

    def _write_events(self, item, response):
        self.objects += 1
        try:
            for fields in self.decoder.events(item.key, response):
                epoch = instant(fields.get("EventReceivedTime"))
                if self.start <= (item.epoch if epoch is None else epoch) < self.end:
                    self.output.write(self.line(fields))
                    self.events += 1
        except Exception as exc:  # an object's failure is that object's alone
            self._missed(item, "it cannot be decoded (%s)" % object_failure(exc))
        finally:
            response["Body"].close()


def _replay_command(parts, arguments):
    """`replay`: one server's events of a time range, on stdout or in a file."""
    servers = parts.settings.SERVER
    if servers == "*" or len(servers) != 1:
        NXLOG.log_error("%s: replay reads one server: give --server NAME" % SCRIPT)
        return 2
    if _reversed(arguments):
        return 2
    try:
        output = _new_file(arguments.output, arguments.force) if arguments.output else \
            sys.stdout.buffer
    except OSError as exc:
        NXLOG.log_error("%s: cannot write -o %s: %s%s" % (
            SCRIPT, arguments.output, exc, "; --force replaces it" if
            exc.errno in (errno.EEXIST, errno.ELOOP) else ""))
        return 2
    replay = Replay(parts, servers[0], arguments.start, arguments.end, arguments.margin,
                    {"jsonl": _jsonl_line, "raw": _raw_line}[arguments.format], output)
    progress = Progress(sys.stderr, arguments.start, arguments.end, parts.clock)
    try:
        replay.run(progress)
    finally:
        progress.close(replay.events)
        output.flush()
        if arguments.output:
            output.close()
    parts.log.info("replayed %s of %s from %s, %s" % (
        count(replay.events, "event"), prefix_url(parts.settings, servers[0]),
        count(replay.objects, "object"), _range_text(arguments.start, arguments.end)))
    empty = not replay.objects and servers_without_objects(parts, servers)
    return EXIT_WARNED if replay.missed or empty else 0


def _reversed(arguments):
    """Whether --to comes before --from (or with it), logged as the usage error it is."""
    if None not in (arguments.start, arguments.end) and arguments.end <= arguments.start:
        NXLOG.log_error("%s: --to %s does not come after --from %s" % (
            SCRIPT, utc_text(arguments.end), utc_text(arguments.start)))
        return True
    return False


def _new_file(path, force):
    """PATH made anew, readable by its owner only; an existing file or link there refused,
    or with FORCE removed first (a link is never written through)."""
    if force and os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)
    return open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600), "wb")
