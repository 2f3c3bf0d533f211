"""Parquet batches, written from the spool's JSON lines."""

import base64
import collections
import functools
import io
import itertools
import json
import re

from nxlog_s3.common.objects import MORE_FIELDS, ZONED_TIME, instant
from nxlog_s3.common.optional import parquet_library

PARQUET_ROWS = 32768  # events per row group: what a Parquet batch holds in memory at a time
PARQUET_COLUMNS = 256  # field names that get a column of their own in a Parquet batch; the


def _kind(value):
    """What a Parquet column of VALUE holds: a JSON value of a batch spooled for Parquet."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -2 ** 63 <= value < 2 ** 63 else "text"  # beyond int64: its digits
    if isinstance(value, dict):
        return "binary"
    if not isinstance(value, str):
        return "text"  # what no NXLog field is (a fraction, a null): its JSON
    if ZONED_TIME.match(value) and _micros(value) is not None:
        return "timestamp"
    return "string"


def _arrow_types(arrow):
    return {"bool": arrow.bool_(), "int": arrow.int64(), "binary": arrow.binary(),
            "timestamp": arrow.timestamp("us", tz="UTC"), "string": arrow.string()}


@functools.lru_cache(maxsize=4096)
def _micros(zoned):
    """Microseconds since the epoch of a zoned time; None if it is no such time."""
    epoch = instant(zoned)
    return None if epoch is None else int(round(epoch * 1000000))


def _as_text(value):
    """A value in a text column: a field seen with two kinds of value."""
    if value is None or isinstance(value, str):
        return value
    return value["base64"] if isinstance(value, dict) else json.dumps(value)


CONVERSIONS = {"timestamp": lambda value: None if value is None else _micros(value),
               "binary": lambda value: None if value is None else base64.b64decode(
                   value["base64"]),
               "text": _as_text}
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(values):
    """VALUES of a text column, each lone surrogate (which NXLog may hand over, and UTF-8,
    Parquet's only text, cannot hold) replaced by U+FFFD; and how many values had one."""
    result, replaced = [], 0
    for value in values:
        if isinstance(value, str) and LONE_SURROGATE.search(value):
            value, replaced = LONE_SURROGATE.sub("\ufffd", value), replaced + 1
        result.append(value)
    return result, replaced


def _rows(source):
    """The events of a spooled batch, a JSON object a line (read as text: json.loads would
    look for the encoding of every line)."""
    decode = json.JSONDecoder().decode
    text = io.TextIOWrapper(source, encoding="utf-8", errors="surrogatepass", newline="\n")
    try:
        for line in text:
            yield decode(line)
    finally:
        text.detach()  # SOURCE stays open, for the next pass


def _columns(source):
    """{field name: kind} of the first PARQUET_COLUMNS field names in SOURCE, in the order
    first seen, and whether it holds others; a field seen with two kinds of value is "text"
    (a string column its values are turned into), and a string field is looked at once: no
    later value can make it anything else."""
    kinds, more = collections.OrderedDict(), False
    for row in _rows(source):
        for name, value in row.items():
            kind = kinds.get(name)
            if kind == "string" or kind == "text":
                if kind == "string" and not isinstance(value, str):
                    kinds[name] = "text"
                continue
            if kind is None and len(kinds) == PARQUET_COLUMNS:
                more = True
                continue
            this = _kind(value)
            kinds[name] = this if kind is None or kind == this else "text"
    return kinds, more


def _more_column(kinds):
    """The name of the column for the fields beyond PARQUET_COLUMNS: none of KINDS'."""
    name = "more_fields"
    while name in kinds:
        name += "_"
    return name


def _more_fields(row, kinds):
    """ROW's fields that have no column of their own, as a JSON object (binary as base64
    text, as in JSON lines), or None."""
    more = {name: value["base64"] if isinstance(value, dict) else value
            for name, value in row.items() if name not in kinds}
    return json.dumps(more, separators=(",", ":")) if more else None


PLAIN_KINDS = {"string", "int", "bool", "timestamp"}  # what Arrow's JSON reader can parse


def _write_parquet(source, target, compression):
    """The events of a spooled batch (SOURCE, JSON lines) as Parquet in TARGET (a file it
    may rewrite): one row per event and a column per field name seen (strings, integers,
    booleans, timestamps in UTC, binary); a field seen with two kinds of value is text. Two
    passes over SOURCE, the first for the columns, so that memory holds PARQUET_ROWS events
    at a time. Returns how many text values had a lone surrogate replaced."""
    arrow = parquet_library()
    kinds, more = _columns(source)
    kinds = kinds or {"raw_event": "string"}  # events with no field are rows too
    types = _arrow_types(arrow)
    columns = [(name, types["string" if kind == "text" else kind])
               for name, kind in kinds.items()]
    more = _more_column(kinds) if more else None
    schema = arrow.schema(columns + [(more, arrow.string())] if more else columns,
                          metadata={MORE_FIELDS: more} if more else None)
    if not more and PLAIN_KINDS.issuperset(kinds.values()) and \
            hasattr(arrow.json, "open_json"):
        try:
            return _write_row_groups(arrow, target, schema, compression,
                                     _parsed_by_arrow(arrow, source, schema))
        except arrow.ArrowInvalid:  # a lone surrogate, a line longer than a block: the slow way
            target.seek(0)
            target.truncate()
    return _write_row_groups(arrow, target, schema, compression,
                             _converted_here(arrow, source, kinds, schema, more))


def _write_row_groups(arrow, target, schema, compression, groups):
    """Writes GROUPS, (table, lone surrogates replaced) pairs, each a row group; returns how
    many values had their lone surrogates replaced."""
    total = 0
    with arrow.parquet.ParquetWriter(target, schema, compression=compression) as writer:
        for table, replaced in groups:
            writer.write_table(table)
            total += replaced
    return total


def _parsed_by_arrow(arrow, source, schema):
    """SOURCE's events, PARQUET_ROWS at a time, parsed by Arrow's JSON reader: in C++, which
    leaves the interpreter to write_data meanwhile, four times as fast. For columns of plain
    kinds only, each value of the kind its column says (see _columns)."""
    source.seek(0)
    reader = arrow.json.open_json(
        source, read_options=arrow.json.ReadOptions(use_threads=False),
        parse_options=arrow.json.ParseOptions(explicit_schema=schema,
                                              unexpected_field_behavior="error"))
    waiting, rows = [], 0
    for batch in reader:
        waiting.append(batch)
        rows += batch.num_rows
        while rows >= PARQUET_ROWS:
            table = arrow.Table.from_batches(waiting, schema)
            yield table.slice(0, PARQUET_ROWS), 0
            rest = table.slice(PARQUET_ROWS)
            waiting, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield arrow.Table.from_batches(waiting, schema), 0


def _converted_here(arrow, source, kinds, schema, more=None):
    """SOURCE's events, PARQUET_ROWS at a time, decoded and converted in Python: binary and
    text columns, what Arrow's JSON reader refuses, and with MORE the fields beyond
    PARQUET_COLUMNS in that column."""
    source.seek(0)
    rows = _rows(source)
    while True:
        group = list(itertools.islice(rows, PARQUET_ROWS))
        if not group:
            return
        columns = {}
        for name, kind in kinds.items():
            values = [row.get(name) for row in group]
            convert = CONVERSIONS.get(kind)
            columns[name] = values if convert is None else list(map(convert, values))
        if more:
            columns[more] = [_more_fields(row, kinds) for row in group]
        replaced = 0
        try:
            table = arrow.Table.from_pydict(columns, schema=schema)
        except UnicodeEncodeError:  # rare: only then is every text value looked at
            for name, kind in kinds.items():
                if kind in ("string", "text"):
                    columns[name], some = _without_lone_surrogates(columns[name])
                    replaced += some
            table = arrow.Table.from_pydict(columns, schema=schema)
        yield table, replaced
