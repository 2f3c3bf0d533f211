"""im_python for bench/nxlog_bench.py: makes BENCH_EVENTS events of one field (a line of
about 130 bytes) and posts them, 10,000 a call. NXLog's ceiling for a Python input."""

import os

TARGET = int(os.environ["BENCH_EVENTS"])
LINE = "10.1.2.3 - - [03/Dec/2026:10:00:00 +0000] \"GET /api/v1/items/4711?req=5f1d HTTP/1.1\" " \
       "200 5120 \"-\" \"curl/8.5.0\""
posted = 0


def read_data(module):
    global posted
    for _ in range(min(10000, TARGET - posted)):
        event = module.logdata_new()
        event.set_field("raw_event", LINE)
        event.post()
        posted += 1
    if posted < TARGET:
        module.set_read_timer(0.001)
