"""An om_python script for tests/test_real_nxlog.py, as a user may write one: it loads
s3_write.py and calls its write_data for the events it keeps. Its write_data is held in a
global here, and called from Python: an EntryPoint that took that for NXLog's own hold gave
a reference back and was freed in use (NXLog died of SIGSEGV at the first events)."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("s3_write", os.path.join(ROOT, "s3_write.py"))
s3_write = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(s3_write)
store = s3_write.write_data


def write_data(event):
    if "skip" not in event.get_field("raw_event"):
        store(event)
