"""om_python for bench/nxlog_bench.py: the floor with NXLog's C library called directly (no
wrapper frames) and a JSON encoder built once: the most a lossless writer written in Python
can make of NXLog's calls (every field, one JSON line, one os.write()). BENCH_DONE gets the
time once BENCH_EVENTS came."""

import json
import os
import time

import libpynxlog

TARGET = int(os.environ["BENCH_EVENTS"])
OUT = os.open(os.environ["BENCH_OUT"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
names, get = libpynxlog.get_logdata_field_names, libpynxlog.get_logdata_field
written = 0


def write_data(event):
    global written
    c_module, c_logdata = event.module.c_module, event.c_logdata
    fields = {name: get(c_module, c_logdata, name) for name in names(c_module, c_logdata)}
    os.write(OUT, (encode(fields) + "\n").encode())
    written += 1
    if written == TARGET:
        with open(os.environ["BENCH_DONE"], "w") as done:
            done.write(repr(time.time()))
