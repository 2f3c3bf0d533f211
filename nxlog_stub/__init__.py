"""A stand-in for NXLog: its Python API and a runner for the routes of an nxlog.conf.

Importing this package registers the module `nxlog` that scripts import under NXLog. Like
NXLog's, it offers the four log functions and the C library its wrapper calls (libpynxlog);
the module and event objects reach a script as arguments. The stub's own controls (captured
logs, the API flavour, the calling protocol) live in `nxlog_stub.api`. See runner.py for
the routes; `python -m nxlog_stub --help`.
"""

import sys
import types

from . import api


def _nxlog_module():
    module = types.ModuleType("nxlog", "NXLog's Python API (nxlog_stub's stand-in).")
    for name in ("log_debug", "log_info", "log_warning", "log_error"):
        setattr(module, name, getattr(api, name))
    module.libpynxlog = api.LIBPYNXLOG  # the C library NXLog CE's wrapper is written over
    return module


nxlog = sys.modules.setdefault("nxlog", _nxlog_module())
