"""An event's fields read from NXLog, and events posted to it: by NXLog CE's C library
(libpynxlog) where it is loaded, else by the methods of NXLog's API.

NXLog CE's `nxlog` module is a Python wrapper over libpynxlog: each get_field, set_field,
logdata_new and post is a Python frame and three lookups before its C call, on every field
of every event (bench/nxlog_bench.py measures it). The wrapper's objects carry what the C
calls take (an event's c_logdata, its module's c_module), so the scripts make those
calls themselves, with the arguments the wrapper passes. Any other API (NXLog's older one,
another wrapper) is called through its methods, as before.
"""

import functools

from nxlog_s3.common.optional import nxlog

LIBRARY = getattr(nxlog, "libpynxlog", None)  # NXLog CE's C calls, or None


def _fields_by_methods(event):
    names = getattr(event, "field_names", None) or event.get_names  # current, else legacy
    names = names()
    return dict(zip(names, map(event.get_field, names)))


def event_fields(event):
    """EVENT's fields (an om_python event), as a dict."""
    try:
        c_module, c_logdata = event.module.c_module, event.c_logdata
    except AttributeError:
        return _fields_by_methods(event)
    if LIBRARY is None:
        return _fields_by_methods(event)
    get = LIBRARY.get_logdata_field
    return {name: get(c_module, c_logdata, name)
            for name in LIBRARY.get_logdata_field_names(c_module, c_logdata)}


def library_calls(module):
    """(c_module, logdata_new, set_logdata_field, post_logdata): what posting an event by
    MODULE (the im_python module read_data was given) takes in NXLog CE's C library; None
    where there is no such library (see method_poster)."""
    c_module = getattr(module, "c_module", None)
    if LIBRARY is None or c_module is None:
        return None
    return (c_module, LIBRARY.logdata_new, LIBRARY.set_logdata_field,
            LIBRARY.post_logdata)


def _post_by_methods(new_event, fields):
    event = new_event()
    for name, value in fields.items():
        event.set_field(name, value)
    event.post()


def method_poster(module):
    """post(fields): a new event of FIELDS (a dict NXLog takes as it is) posted by MODULE
    through the methods of NXLog's API, where library_calls gives None."""
    new_event = getattr(module, "logdata_new", None) or module.new_logdata  # current, legacy
    return functools.partial(_post_by_methods, new_event)
