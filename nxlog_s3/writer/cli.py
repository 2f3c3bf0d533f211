"""The writer's commands, as `python3 s3_write.py --help` lists them."""

from nxlog_s3.common.command import JSON_OPTION, check_command
from nxlog_s3.writer.status import _status_command
from nxlog_s3.writer.writer import Writer

COMMANDS = {"check": ("make every start-up check NXLog would make (settings, spool folder, "
                      "bucket, credentials), writing nothing to the bucket",
                      lambda settings, arguments: check_command(Writer(settings), arguments),
                      ()),
            "status": ("show what the spool holds: batches, events, bytes, the oldest "
                       "event's age, the last key stored and the last upload error (read "
                       "from the spool folder, also while NXLog runs)", _status_command,
                       [JSON_OPTION])}
