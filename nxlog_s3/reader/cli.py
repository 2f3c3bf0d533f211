"""The reader's commands, as `python3 s3_read.py --help` lists them."""

from nxlog_s3.common.command import JSON_OPTION, check_command
from nxlog_s3.reader.audit import _audit_command
from nxlog_s3.reader.commands import REPLAY_MARGIN, _margin, _s3_command, command_time
from nxlog_s3.reader.reader import Reader
from nxlog_s3.reader.replay import _replay_command
from nxlog_s3.reader.status import _status_command


def _time_option(flag, what, required):
    return (flag, {"dest": "start" if flag == "--from" else "end", "type": command_time,
                   "required": required, "metavar": "TIME", "help": what})


COMMANDS = {
    "check": ("make every start-up check NXLog would make (settings, checkpoint folder and "
              "file, bucket, credentials), writing nothing to the bucket",
              lambda settings, arguments: check_command(Reader(settings), arguments), ()),
    "status": ("show, per server, where the reader is, how far behind the newest key in the "
               "bucket, and the objects it set aside and why (read from the checkpoint, also "
               "while NXLog runs)", _s3_command(_status_command), [JSON_OPTION]),
    "audit": ("show, per server and day, the objects, events and bytes stored, and find "
              "counters missing inside a second, a batch stored twice, keys off the scheme "
              "and, with --deep, objects that do not decode; exit status 1 if it found any",
              _s3_command(_audit_command),
              [_time_option("--from", "the first second to audit (default: the first object)",
                            False),
               _time_option("--to", "the second to stop before (default: the last object)",
                            False),
               ("--deep", {"action": "store_true", "help": "fetch and decode every object, "
                           "not only its metadata"}),
               ("--by", {"choices": ("day", "hour"), "default": "day", "help": "day: "
                         "objects, events and bytes per server and day; hour: a bar of "
                         "the events of each hour, one line per server and day (--json has "
                         "the counts under hours) (default: %(default)s)"}), JSON_OPTION]),
    "replay": ("write the events one server received in a time range, in order, decoded as "
               "the reader decodes them", _s3_command(_replay_command),
               [_time_option("--from", "the first time of the range: ISO 8601 with a zone "
                             "(2026-11-28T10:00:00Z), local time without one, now, or back "
                             "from now: --from=-15m, -2h, -1d", True),
                _time_option("--to", "the time the range ends before", True),
                ("--format", {"choices": ("jsonl", "raw"), "default": "jsonl",
                              "help": "jsonl: every field, one JSON object a line; raw: "
                              "raw_event a line (default: %(default)s)"}),
                ("-o", {"dest": "output", "metavar": "FILE", "help": "write to FILE, a new "
                        "file readable by its owner only, instead of stdout"}),
                ("--force", {"action": "store_true", "help": "with -o: replace FILE if it "
                             "exists (a link there is removed, never written through)"}),
                ("--margin", {"type": _margin, "default": REPLAY_MARGIN, "metavar": "SECONDS",
                              "help": "how long before --from a batch holding events of the "
                              "range may be keyed: at least the writers' BATCH_AGE (default: "
                              "%(default)s)"})])}
