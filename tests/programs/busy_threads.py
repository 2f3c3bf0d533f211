"""An om_python script for tests/test_real_nxlog.py: threads as busy as a script's can be,
eight waking every 0.1 ms, and a write_data that keeps the events. With
NXLOG_S3_TEST_ENTRY=host, write_data is common/host.py's EntryPoint, whose release at NXLog's
stop ends the threads first; else it is a plain function, and a thread waking after NXLog
cleared the interpreter kills NXLog (SIGSEGV: within two stops, in each of 4 runs)."""

import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from nxlog_s3.common.host import entry_points  # noqa: E402
from nxlog_s3.common.runtime import SCRIPT, Clock, Log  # noqa: E402

stopping = threading.Event()


def spin():
    while not stopping.is_set():
        time.sleep(0.0001)


threads = [threading.Thread(target=spin, daemon=True, name="%s busy %d" % (SCRIPT, number))
           for number in range(8)]
for thread in threads:
    thread.start()


log = Log(Clock())
written = []


def write(event):
    if not written:
        log.info("the first event came")
    written.append(event.get_field("raw_event"))


def stop():
    stopping.set()
    for each in threads:
        each.join()


if os.environ.get("NXLOG_S3_TEST_ENTRY") == "host":
    __getattr__ = entry_points({"write_data": write}, stop, log)
else:
    write_data = write
