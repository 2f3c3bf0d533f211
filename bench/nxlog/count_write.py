"""om_python for bench/nxlog_bench.py: write_data reads two fields and counts. NXLog's
ceiling for a Python output; BENCH_DONE gets the time once BENCH_EVENTS came."""

import os
import time

TARGET = int(os.environ["BENCH_EVENTS"])
written = 0


def write_data(event):
    global written
    event.get_field("raw_event")
    event.get_field("EventReceivedTime")
    written += 1
    if written == TARGET:
        with open(os.environ["BENCH_DONE"], "w") as done:
            done.write(repr(time.time()))
