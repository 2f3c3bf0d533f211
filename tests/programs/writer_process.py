"""A writer process for the crash tests: python writer_process.py START COUNT PROGRESS

Loads s3_write.py through the stub, as NXLog would, prints "ready", then ships the events
START to COUNT-1 ("event NNNNNN"), appending to the file PROGRESS the number of each event
whose write_data has returned. Then waits until its spool is empty and prints "drained".
Settings come from the environment (NXLOG_S3_*, AWS_*).
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import nxlog_stub  # noqa: E402,F401  (registers the stub as `nxlog`)
from nxlog_stub import api  # noqa: E402
from nxlog_stub.runner import load_script  # noqa: E402

api.echo = lambda level, message: print(level, message, file=sys.stderr, flush=True)


def main(start, count, progress_path):
    writer = load_script(os.path.join(ROOT, "s3_write.py"), "s3")
    module = api.output_module("s3")
    progress = os.open(progress_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    print("ready", flush=True)
    for number in range(start, count):
        event = api.new_event(module, {"raw_event": "event %06d" % number,
                                       "EventReceivedTime": api.local_time_string()})
        if not api.call_write_data(writer.write_data, event):
            sys.exit("write_data refused event %d: %s" % (number, api.logged("ERROR")))
        os.write(progress, b"%d\n" % number)
    while writer.instance.spool.pending():
        time.sleep(0.02)
    print("drained", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
