"""FieldGuard: fields made into what NXLog's set_field takes."""

import itertools
import re

from nxlog_s3.common.events import library_calls, method_poster
from nxlog_s3.reader.lines import _nxlog_time, _nxlog_times

# What NXLog's set_field cannot take (../shared/nxlog-python-api.md): a NUL or a lone
# surrogate in a field name kills NXLog, a NUL in a value cuts it short, an integer beyond 64
# bits raises, text of more than NXLOG_MAX_TEXT bytes (UTF-8) makes NXLog give up the call,
# and the input with it, for good. The reader escapes such text visibly (\u0000), posts such
# integers as text, and cuts text at NXLog's limit.
NXLOG_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")
INT64_LIMIT = 2 ** 63
NXLOG_MAX_TEXT = 1048576


def _unsafe_text(text):
    return not (text.isascii() and "\x00" not in text) and \
        NXLOG_UNSAFE_TEXT.search(text) is not None


def _escaped(text):
    return NXLOG_UNSAFE_TEXT.sub(lambda match: "\\u%04x" % ord(match.group()), text)


def _within_nxlog_limit(text):
    """TEXT, or as much of it as NXLog takes (whole characters)."""
    if len(text) <= NXLOG_MAX_TEXT // 4:
        return text
    encoded = text.encode("utf-8")
    if len(encoded) <= NXLOG_MAX_TEXT:
        return text
    return encoded[:NXLOG_MAX_TEXT].decode("utf-8", "ignore")


def _text_needs_care(text):
    """Whether NXLog cannot take TEXT as it is (a long text that fits is not changed)."""
    return _unsafe_text(text) or _within_nxlog_limit(text) is not text


def _field_needs_care(name, value, safe_names):
    """Whether NXLog cannot take the field NAME=VALUE as it is; SAFE_NAMES (a set) learns
    the names it takes."""
    if name not in safe_names:
        if _text_needs_care(name):
            return True
        safe_names.add(name)
    if type(value) is str:
        return _text_needs_care(value)
    return type(value) is int and not -INT64_LIMIT <= value < INT64_LIMIT


def _text_nxlog_takes(text):
    """TEXT as NXLog takes it, and whether some of it had to be cut."""
    escaped = _escaped(text) if _unsafe_text(text) else text
    taken = _within_nxlog_limit(escaped)
    return taken, taken is not escaped


class Poster(object):
    """post(events, most): posts up to MOST of EVENTS (an iterator, left just past the last
    event posted), in one loop, and returns how many; POSTED counts the events posted so
    far, also when an event or EVENTS raised."""

    def __init__(self, post_events):
        self.post_events = post_events
        self.posted = 0

    def post(self, events, most):
        before = self.posted
        self.post_events(itertools.islice(events, most), self)
        return self.posted - before


class FieldGuard(object):
    """Makes an event's fields what NXLog's set_field takes: a name it cannot take gets its
    NUL and lone surrogates escaped (and ~2, ~3... if another field has that name already),
    a value its NULs and lone surrogates escaped, an integer beyond 64 bits its decimal
    text, text beyond NXLOG_MAX_TEXT bytes (no writer of ours stores such) cut there."""

    def __init__(self):
        self.safe_names = set()  # the names seen that NXLog takes as they are

    def guarded(self, fields):
        """FIELDS, or a copy NXLog takes; the names of the fields changed (None if none
        was), and whether text was cut."""
        changed = None
        for name, value in fields.items():
            if _field_needs_care(name, value, self.safe_names):
                changed = (changed or []) + [name]
        if changed is None:
            return fields, None, False
        safe, cut = self._made_safe(fields)
        return safe, changed, cut

    def poster(self, module, report, times):
        """A Poster of events by MODULE (the im_python module read_data was given), as NXLog
        takes them (see guarded); REPORT(names, cut) for an event whose fields had to
        change. TIMES: the fields' zoned times are posted as NXLog gives datetime fields
        (lines._nxlog_times). Every event passes here: with NXLog's C library, one loop
        posts the events, and for each field makes its time NXLog's, checks it and sets it;
        the common case (a name seen before, short ASCII text, a small integer) takes no
        call of ours, other text one check; anything else goes through guarded()."""
        calls = library_calls(module)
        if calls is None:
            post = method_poster(module)

            def post_guarded(events, poster):
                for fields in events:
                    post(self._safe_fields(fields, report, times))
                    poster.posted += 1
            return Poster(post_guarded)
        c_module, new, set_field, post_logdata = calls
        safe_names, nxlog_time, max_text = self.safe_names, _nxlog_time, NXLOG_MAX_TEXT

        def post_guarded(events, poster):
            posted = 0
            try:
                for fields in events:
                    c_logdata = new()
                    for name, value in fields.items():
                        if name in safe_names:
                            kind = type(value)
                            if kind is str:
                                if times and len(value) == 25 and value[10] == "T":
                                    value = nxlog_time(value)  # as _nxlog_times
                                if value.isascii() and "\x00" not in value and \
                                        len(value) <= max_text or \
                                        not _text_needs_care(value):
                                    set_field(c_module, c_logdata, name, value)
                                    continue
                            elif kind is not int or -INT64_LIMIT <= value < INT64_LIMIT:
                                set_field(c_module, c_logdata, name, value)
                                continue
                        safe = self._safe_fields(fields, report, times)
                        for name, value in safe.items():  # all again: those set were the same
                            set_field(c_module, c_logdata, name, value)
                        break
                    post_logdata(c_module, c_logdata)
                    posted += 1
            finally:
                poster.posted += posted
        return Poster(post_guarded)

    def _safe_fields(self, fields, report, times):
        """FIELDS as NXLog takes them (see guarded), their zoned times NXLog's with TIMES;
        REPORT(names, cut) if some had to change."""
        safe, changed, cut = self.guarded(_nxlog_times(fields) if times else fields)
        if changed:
            report(changed, cut)
        return safe

    @staticmethod
    def _made_safe(fields):
        safe, cut = {}, False
        for name, value in fields.items():
            if _text_needs_care(name):
                name, name_cut = _text_nxlog_takes(name)
                base, cut = name, cut or name_cut
                for number in itertools.count(2):
                    if name not in fields and name not in safe:
                        break
                    name = "%s~%d" % (base, number)
            if type(value) is str:
                value, value_cut = _text_nxlog_takes(value)
                cut |= value_cut
            elif type(value) is int and not -INT64_LIMIT <= value < INT64_LIMIT:
                value = str(value)
            safe[name] = value
        return safe, cut
