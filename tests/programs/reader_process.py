"""A reader process for the crash tests: python reader_process.py OUTPUT

Loads s3_read.py through the stub, as NXLog would, prints "ready", and calls read_data as
NXLog does (honouring the timer it sets). Each event is appended to OUTPUT as it is posted,
as NXLog takes it at post(). Prints "caught up" and ends once a call finds nothing new, no
error kept it from looking, and no object that failed waits to be tried again (a run killed
just after a failed GET leaves one for the next run, a poll later).
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


def main(output_path):
    reader = load_script(os.path.join(ROOT, "s3_read.py"), "s3")
    output = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    module = api.input_module("s3")
    module.deliver = lambda event: os.write(output, b"%s\n" % event.get_field(
        "raw_event").encode())
    print("ready", flush=True)
    while True:
        problems = len(api.logged("ERROR")) + len(api.logged("WARNING"))
        delay, _ = api.call_read_data(reader.read_data, module)
        if delay is None:
            sys.exit("the input stopped: %s" % api.logged("ERROR"))
        if delay == reader.instance.settings.POLL_INTERVAL and not retries_waiting(reader) \
                and len(api.logged("ERROR")) + len(api.logged("WARNING")) == problems:
            print("caught up", flush=True)
            return
        time.sleep(delay)


def retries_waiting(reader):
    """Whether an object that failed (in this run, or in a run killed since) waits for its
    next try, a poll after the last: the reader has not caught up while one does."""
    return any(position.attempts for position in
               reader.instance.checkpoint.positions.values())


if __name__ == "__main__":
    main(sys.argv[1])
