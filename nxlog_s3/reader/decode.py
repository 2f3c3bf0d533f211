"""Decoding an object's bytes into events, within a budget."""

import functools
import gzip
import io
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
    DecodeBudget,
    _json_fields,
    _nxlog_times,
    _skip_newlines,
    _too_large,
    _where,
)
from nxlog_s3.reader.parquet import _parquet_events

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




@functools.lru_cache(maxsize=4096)


class Decoder(object):
    """An object's events, as field dicts, by what its metadata says it holds (raw, JSON,
    pickle, JSON lines; gzip, zstd), streamed: memory stays bounded whatever its size."""

    def __init__(self, settings, log, nxlog_times=True):
        self.settings, self.log = settings, log
        self.nxlog_times = nxlog_times  # zoned times as NXLog gives them; False: as stored

    def events(self, key, response, budget=None):
        """KEY's events, decoded from RESPONSE within BUDGET (by default its own)."""
        budget = budget or DecodeBudget(self.settings, response.get("ContentLength", 0))
        metadata = response.get("Metadata", {})
        body_format = metadata.get(METADATA_FORMAT)
        if body_format == "parquet":
            return self._with_times(metadata, _parquet_events(
                response["Body"], budget, self.settings.MAX_EVENT_BYTES))
        stream = self._decompressing(response, metadata)
        if body_format == "jsonl" or (body_format is None and self.settings.RAW_LINES):
            events = self._line_events(key, stream, body_format, budget)
        else:
            events = iter([self._one_event(key, self._bounded_read(stream.read, budget),
                                           body_format)])
        return self._with_times(metadata, events)

    def _with_times(self, metadata, events):
        """EVENTS, their zoned times as NXLog gives datetime fields where they are wanted."""
        if self.nxlog_times and metadata.get(METADATA_TIMES) == "zoned":
            return map(_nxlog_times, events)
        return events

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
        if compression == "gzip":
            return gzip.GzipFile(fileobj=stream, mode="rb")
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
        if limit and len(data) > limit and not (len(data) == limit + 1 and
                                                 data.endswith(b"\n")):
            raise UndecodableObject(_too_large(_where(line), limit))
        budget.take(len(data))
        return data

    def _line_events(self, key, stream, body_format, budget):
        """The events of an object that holds one per line: a batch (JSON lines) or, with
        RAW_LINES, a text object without metadata."""
        if not isinstance(stream, io.BufferedReader):  # GzipFile: its readline is Python
            stream = io.BufferedReader(stream, 1 << 16)  # code, a buffer over it reads in C
        number = 0
        while True:
            number += 1
            line = self._bounded_read(stream.readline, budget, number)
            if not line:
                return
            if body_format != "jsonl":
                yield {"raw_event": self._text(line.rstrip(b"\n").rstrip(b"\r"), key)}
            elif line != b"\n":
                yield _json_fields(line, number)  # with its newline: no copy of a long line
            else:
                skipped = _skip_newlines(stream)
                budget.take(skipped)
                number += skipped
