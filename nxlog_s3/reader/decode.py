"""Decoding an object's bytes into events, within a budget."""

import gzip
import io
import itertools
import pickle
import re

from nxlog_s3.common.errors import UndecodableObject
from nxlog_s3.common.objects import (
    GZIP_MAGIC,
    METADATA_COMPRESSION,
    METADATA_FORMAT,
    METADATA_TIMES,
)
from nxlog_s3.common.optional import zstandard
from nxlog_s3.common.s3 import quoted
from nxlog_s3.reader.lines import (
    _SCAN_JSON,
    DecodeBudget,
    _json_fields,
    _too_large,
    _where,
)
from nxlog_s3.reader.parquet import _parquet_events

LINES_BLOCK = 1 << 20  # bytes of a batch split into lines at a time
_EMPTY_LINES = re.compile(b"\n\n+")
PICKLE_MAGIC = re.compile(b"^\x80[\x02-\x05]")  # what a pickle of protocol 2 to 5 starts with


class _RawBody(io.RawIOBase):
    """botocore's StreamingBody as a raw stream, so that io and gzip can buffer and peek it."""

    def __init__(self, body):
        io.RawIOBase.__init__(self)
        self.body = body

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.body.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def zoned_times(response):
    """Whether the datetime fields of RESPONSE's object (a GET's) are zoned text, as this
    project's writer stores them (see lines._nxlog_times)."""
    return response.get("Metadata", {}).get(METADATA_TIMES) == "zoned"


class Decoder(object):
    """An object's events, as field dicts, by what its metadata says it holds (raw, JSON,
    pickle, JSON lines; gzip, zstd), streamed: memory stays bounded whatever its size."""

    def __init__(self, settings, log):
        self.settings, self.log = settings, log

    def events(self, key, response, budget=None):
        """KEY's events, decoded from RESPONSE within BUDGET (by default its own), their
        times as stored (the reader's poster gives zoned ones NXLog's form)."""
        budget = budget or DecodeBudget(self.settings, response.get("ContentLength", 0))
        metadata = response.get("Metadata", {})
        body_format = metadata.get(METADATA_FORMAT)
        if body_format == "parquet":
            return _parquet_events(response["Body"], budget, self.settings.MAX_EVENT_BYTES)
        stream = self._decompressing(response, metadata)
        if body_format == "jsonl":
            return itertools.chain.from_iterable(self._json_line_blocks(stream, budget))
        if body_format is None and self.settings.RAW_LINES:
            return self._text_lines(key, stream, budget)
        return iter([self._one_event(key, self._bounded_read(stream.read, budget),
                                     body_format)])

    @staticmethod
    def _decompressing(response, metadata):
        """The object's body as a stream, decompressed as it is read."""
        stream = io.BufferedReader(_RawBody(response["Body"]), 1 << 16)
        compression = metadata.get(METADATA_COMPRESSION)
        if compression is None:  # not ours: trust Content-Encoding, or the gzip signature
            gzipped = response.get("ContentEncoding") == "gzip" or \
                stream.peek(2)[:2] == GZIP_MAGIC
            compression = "gzip" if gzipped else "none"
        if compression == "none":
            return stream
        if compression == "gzip":  # buffered in C: GzipFile's readline is Python code
            return io.BufferedReader(_RawBody(gzip.GzipFile(fileobj=stream, mode="rb")), 1 << 16)
        if compression == "zstd":
            if zstandard is None:
                raise UndecodableObject("it is zstd-compressed: install the zstandard package "
                                        "for the Python NXLog runs")
            return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(stream))
        raise UndecodableObject("unknown %s %r" % (METADATA_COMPRESSION, compression))

    def _text(self, body, key):
        try:
            return body.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            self.log.warning("%s is not valid UTF-8; its undecodable bytes are kept as \\x "
                             "escapes" % quoted(self.settings.BUCKET, key))
            return body.decode("utf-8", "backslashreplace")

    def _pickled_fields(self, body):
        if not self.settings.ALLOW_PICKLE:
            raise UndecodableObject("it is a pickle, and unpickling runs code: set "
                                    "NXLOG_S3_ALLOW_PICKLE=true only if you trust every writer "
                                    "to this bucket")
        try:
            fields = pickle.loads(body)
        except Exception as exc:  # unpickling can raise anything
            raise UndecodableObject("invalid pickle: %s" % exc) from None
        if not isinstance(fields, dict) or not all(isinstance(name, str) for name in fields):
            raise UndecodableObject("the pickle does not hold a dict of fields")
        return fields

    def _one_event(self, key, body, body_format):
        """The event of an object that holds one. No metadata: the old scripts' (a pickle
        when it starts like one, else raw text) or another tool's (raw text)."""
        if body_format is None:
            body_format = "pickle" if PICKLE_MAGIC.match(body) else "raw"
        if body_format == "raw":
            return {"raw_event": self._text(body, key)}
        if body_format == "json":
            return _json_fields(body)
        if body_format == "pickle":
            return self._pickled_fields(body)
        raise UndecodableObject("unknown %s %r (written by a newer s3_write.py?)"
                                % (METADATA_FORMAT, body_format))

    def _bounded_read(self, read, budget, line=None):
        """READ(limit) within MAX_EVENT_BYTES and BUDGET: an event that large (in line number
        LINE, or in the object) is taken for what it most likely is, a decompression bomb or
        not a log."""
        limit = self.settings.MAX_EVENT_BYTES
        data = read(limit + 1 if limit else -1)
        if len(data) > limit > 0:
            _check_event_size(data, limit, line)
        budget.take(len(data))
        return data

    def _json_line_blocks(self, stream, budget):
        """A batch's events, one JSON object a line, in lists: those of LINES_BLOCK bytes at
        a time. The hot path of every reader: each block is split into lines and decoded in
        C, and its lines as s3_write.py writes them (an object in JSON) take no call of
        ours; anything else goes the slower way, which words the errors. Runs of empty lines
        are dropped in C first: a bomb of them costs no step each. A line that cannot be
        decoded raises once the events before it came."""
        limit, rest, base = self.settings.MAX_EVENT_BYTES, b"", 0
        while True:
            block = stream.read(LINES_BLOCK)
            budget.take(len(block))
            if block:
                block = rest + block
                cut = block.rfind(b"\n") + 1
                block, rest = block[:cut], block[cut:]
                if len(rest) > limit > 0:
                    _check_event_size(rest, limit, base + block.count(b"\n") + 1)
            else:
                block, rest = rest, None  # the last line, without its newline
            if len(block) > limit > 0:
                _check_line_sizes(block, limit, base)
            events = []
            try:
                _decode_lines(block, base, events)
            except BaseException:
                yield events  # the events before the line that failed, then its error
                raise
            yield events
            if rest is None:
                return
            base += block.count(b"\n")

    def _text_lines(self, key, stream, budget):
        """The events of a text object without metadata, one a line (RAW_LINES)."""
        number = 0
        while True:
            number += 1
            line = self._bounded_read(stream.readline, budget, number)
            if not line:
                return
            yield {"raw_event": self._text(line.rstrip(b"\n").rstrip(b"\r"), key)}


def _decode_lines(block, base, events):
    """Appends to EVENTS the fields of BLOCK's lines (bytes; the first numbered BASE + 1),
    a line as s3_write.py writes it decoded in C."""
    scan = _SCAN_JSON
    lines = _EMPTY_LINES.sub(b"\n", block) if b"\n\n" in block else block
    try:
        lines = lines.decode("utf-8", "surrogatepass").split("\n")
    except UnicodeDecodeError:  # the slower way, which says in which line
        lines = lines.split(b"\n")
    append = events.append
    for line in filter(None, lines):
        try:
            fields, end = scan(line, 0)
            plain = end == len(line) and type(fields) is dict
        except (StopIteration, ValueError, RecursionError, TypeError):  # TypeError: bytes,
            plain = False  # from a block that is not UTF-8
        append(fields if plain else _line_fields(line, block, base))


def _line_fields(line, block, base):
    """The fields of LINE (text, or bytes that are not UTF-8), one of BLOCK's lines, the
    first of which is numbered BASE + 1; its number is looked for only when it is wanted,
    for the error that names it."""
    body = line if type(line) is bytes else line.encode("utf-8", "surrogatepass")
    try:
        return _json_fields(body)
    except UndecodableObject:  # again, saying in which line: the first such one is this
        return _json_fields(body, base + block.split(b"\n").index(body) + 1)


def _check_line_sizes(block, limit, base):
    """Refuses BLOCK if one of its lines (the first numbered BASE + 1) is larger than
    LIMIT; only looked at in a block larger than that."""
    for number, line in enumerate(block.split(b"\n"), base + 1):
        if len(line) > limit:
            raise UndecodableObject(_too_large(_where(number), limit))


def _check_event_size(data, limit, line):
    """Refuses DATA (read with a limit of LIMIT + 1 bytes), an event larger than LIMIT, in
    line number LINE or in the whole object: a line of LIMIT bytes and its newline passes."""
    if not (len(data) == limit + 1 and data.endswith(b"\n")):
        raise UndecodableObject(_too_large(_where(line), limit))
