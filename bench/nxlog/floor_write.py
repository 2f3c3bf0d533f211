"""om_python for bench/nxlog_bench.py: the least a lossless writer does, every field read
through NXLog's API, one JSON line, one os.write() to a file. No spool, batches nor upload:
the floor s3_write.py is measured against. BENCH_DONE gets the time once BENCH_EVENTS came."""

import json
import os
import time

TARGET = int(os.environ["BENCH_EVENTS"])
OUT = os.open(os.environ["BENCH_OUT"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
written = 0


def write_data(event):
    global written
    fields = {name: event.get_field(name) for name in event.field_names()}
    os.write(OUT, (json.dumps(fields, separators=(",", ":"), default=str) + "\n").encode())
    written += 1
    if written == TARGET:
        with open(os.environ["BENCH_DONE"], "w") as done:
            done.write(repr(time.time()))
