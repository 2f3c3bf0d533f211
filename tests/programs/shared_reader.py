"""A reader process of COORDINATION=s3 for the failover tests: python shared_reader.py OUTPUT

Loads s3_read.py through the stub, as NXLog would, prints "ready", and calls read_data as
NXLog does (honouring the timer it sets) until SIGTERM, which stops it as NXLog's stop does
(its servers handed on). Appends to OUTPUT one JSON line per event posted and per server
taken: {"time", "reader", "server", "lease", "event"} ("event" null for a take), where
"lease" is the count of writes the server's state had when this reader took it: every take
counts higher than the one before, so posts sorted by time whose lease goes down would show
a reader posting a server another reader had taken since.
Settings come from the environment (NXLOG_S3_*, AWS_*).
"""

import json
import os
import signal
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
    checkpoint = reader.instance.checkpoint
    output = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    leases = {}

    def record(server, event):
        os.write(output, json.dumps({"time": time.time(), "reader": checkpoint.id,
                                     "server": server, "lease": leases.get(server),
                                     "event": event}).encode() + b"\n")

    hold = checkpoint._hold

    def held(server, position, etag, written, late):
        hold(server, position, etag, written, late)
        leases[server] = written
        record(server, None)
    checkpoint._hold = held
    module = api.input_module("s3")

    def deliver(event):
        text = event.get_field("raw_event")
        record(text.split(" ")[0], text)
    module.deliver = deliver
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    print("ready", flush=True)
    while not stopping:
        delay, _ = api.call_read_data(reader.read_data, module)
        if delay is None:
            sys.exit("the input stopped: %s" % api.logged("ERROR"))
        time.sleep(delay)
    reader.stop()


if __name__ == "__main__":
    main(sys.argv[1])
