"""om_python or im_python for `bench/nxlog_bench.py --profile`: BENCH_SCRIPT (s3_write.py or
s3_read.py) loaded under a name of its own, each write_data or read_data call of it run under
cProfile, and the profile (functions by their own time) written to BENCH_PROFILE: after the
writer's BENCH_EVENTS-th event, after each of the reader's calls. cProfile makes every Python
call dearer than the C ones: read the shares, not the rates."""

import cProfile
import importlib.util
import io
import os
import pstats

PATH = os.environ["BENCH_SCRIPT"]
_spec = importlib.util.spec_from_file_location(
    "profiled_" + os.path.splitext(os.path.basename(PATH))[0], PATH)
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)
profile = cProfile.Profile()
TARGET = int(os.environ["BENCH_EVENTS"])
written = 0


def dump():
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
    with open(os.environ["BENCH_PROFILE"], "w") as handle:
        handle.write(text.getvalue())


if os.path.basename(PATH).startswith("s3_write"):
    entry = script.write_data

    def write_data(event):
        global written
        profile.enable()
        entry(event)
        profile.disable()
        written += 1
        if written == TARGET:
            dump()
else:
    entry = script.read_data

    def read_data(module):
        profile.enable()
        entry(module)
        profile.disable()
        dump()
