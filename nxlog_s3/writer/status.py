"""`status`: what the spool holds."""

import json
import time

from nxlog_s3.common.command import not_found_where_looked
from nxlog_s3.common.runtime import EXIT_WARNED, NXLOG, SCRIPT, count
from nxlog_s3.writer.spool_files import spool_status


def _status_command(settings, arguments):
    """`status`: what the spool holds, read from its folder, also while NXLog runs."""
    status = dict(spool_status(settings.SPOOL_DIR, time.time()), script=SCRIPT)
    if arguments.json:
        print(json.dumps(status, sort_keys=True))
    else:
        _print_status(status)
    if status["in_use"] is None:
        NXLOG.log_warning("%s: %s" % (SCRIPT, not_found_where_looked(
            "spool", status["spool"], "no writer with these settings has run", "SPOOL_DIR")))
        return EXIT_WARNED
    return 0


def _print_status(status):
    print("%s: spool %s%s" % (status["script"], status["spool"], {
        None: " (no such folder)", True: " (in use by a running writer)", False: ""}[
            status["in_use"]]))
    print("  waiting: %s closed, %s; %s, %s" % (
        count(status["closed_batches"], "batch", "batches"),
        "1 being filled" if status["open_batch"] else "none being filled",
        count(status["events"], "event"), count(status["bytes"], "byte")))
    if status["oldest_event"]:
        print("  oldest event: %s, %d s ago" % (status["oldest_event"],
                                               status["oldest_event_age"]))
    stored = status["last_stored"]
    print("  last stored: %s" % ("%r, its last event %s" % (stored["key"], stored["last"])
                                 if stored else "nothing yet"))
    if status["stored_lately"]:
        print("  stored lately, the latest last:")
    for stored in status["stored_lately"]:
        print("    %s %r, %s" % (stored["stored"], stored["key"], count(stored["events"],
                                                                        "event")))
    error = status["last_error"]
    print("  last upload error: %s" % ("%s %s: %s" % (error["time"], repr(error["key"]),
                                                      error["reason"])
                                       if error else "none"))
