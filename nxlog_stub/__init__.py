"""A stand-in for NXLog: its Python API (`nxlog`) and a runner for the routes of an nxlog.conf.

Importing this package registers `nxlog_stub.api` as the module `nxlog`, so a script written
for NXLog (`import nxlog`) imports it unchanged. See api.py for the API and runner.py for the
routes; `python -m nxlog_stub --help` for the command line.
"""

import sys

from . import api

sys.modules.setdefault("nxlog", api)
