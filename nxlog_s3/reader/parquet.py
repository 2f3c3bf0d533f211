"""Decoding Parquet objects row by row, within the same budget."""

import io
import json
import tempfile

from nxlog_s3.common.errors import UndecodableObject
from nxlog_s3.common.objects import MORE_FIELDS, json_value
from nxlog_s3.common.optional import parquet_library
from nxlog_s3.common.runtime import SCRIPT
from nxlog_s3.reader.lines import CHUNK_BYTES, _json_fields, _too_large


def _parquet_column(arrow, name, column):
    """A Parquet column's values as fields take them: timestamps zoned as JSON lines hold
    them (made by Arrow, in C++), binary as base64 text (NXLog takes no binary field from
    Python), types no writer of ours makes as Arrow's text of them (dates, decimals) or their
    JSON (lists, structs)."""
    types = arrow.types
    if types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if types.is_timestamp(column.type):  # UTC's seconds, no zone to look up
        seconds = arrow.compute.cast(column, arrow.timestamp("s"), safe=False)
        return arrow.compute.strftime(seconds, format="%Y-%m-%dT%H:%M:%S+00:00").to_pylist()
    if types.is_binary(column.type) or types.is_large_binary(column.type):
        return [None if value is None else json_value(value) for value in column.to_pylist()]
    if any(kind(column.type) for kind in (types.is_string, types.is_large_string,
                                          types.is_integer, types.is_boolean,
                                          types.is_floating, types.is_null)):
        return column.to_pylist()
    if types.is_nested(column.type):  # lists, structs, maps: their JSON
        return [None if value is None else json.dumps(value, default=str)
                for value in column.to_pylist()]
    try:
        return arrow.compute.cast(column, arrow.string()).to_pylist()
    except (arrow.ArrowException, ValueError):
        raise UndecodableObject("its column %r is of type %s, which no NXLog field can hold"
                                % (name, column.type)) from None


def _parquet_row_sizes(arrow, batch):
    """The bytes of each row of BATCH once its text and binary are decoded (dictionaries
    expanded), without expanding them; other values count 8 bytes."""
    compute, types = arrow.compute, arrow.types
    sizes = arrow.array([0] * batch.num_rows, arrow.int64())
    for column in batch.columns:
        kind = column.type.value_type if types.is_dictionary(column.type) else column.type
        if any(test(kind) for test in (types.is_string, types.is_large_string, types.is_binary,
                                       types.is_large_binary)):
            if types.is_dictionary(column.type):
                lengths = compute.take(compute.binary_length(column.dictionary), column.indices)
            else:
                lengths = compute.binary_length(column)
            lengths = compute.fill_null(compute.cast(lengths, arrow.int64()), 0)
        else:
            lengths = arrow.array([8] * batch.num_rows, arrow.int64())
        sizes = compute.add(sizes, lengths)
    return sizes.to_pylist()


def _pieces(sizes):
    """(start, length, bytes) of the runs of rows of SIZES that make CHUNK_BYTES or less
    (a row more than that on its own)."""
    start, total = 0, 0
    for row, size in enumerate(sizes):
        if total and total + size > CHUNK_BYTES:
            yield start, row - start, total
            start, total = row, 0
        total += size
    if start < len(sizes):
        yield start, len(sizes) - start, total


def _arrow_source(arrow, body, keep):
    """BODY (an object fetched whole, or streaming) as a file of Arrow's own, which Parquet
    can seek in: its bytes, or a large one copied to a temporary file first (KEEP holds it),
    so that memory stays bounded. Never a Python file: Arrow would call it from threads of
    its own, which under NXLog's sub-interpreters can hang the call for good."""
    if isinstance(body, io.BytesIO):
        return arrow.BufferReader(body.getvalue())
    copy = tempfile.NamedTemporaryFile(prefix=".%s-parquet-" % SCRIPT)
    keep.append(copy)
    for chunk in iter(lambda: body.read(1 << 20), b""):
        copy.write(chunk)
    copy.flush()
    return arrow.memory_map(copy.name)


def _parquet_events(body, budget, max_event_bytes):
    """The rows of a Parquet batch as events, CHUNK_BYTES of them at a time at most; a null
    is a field the event did not have. Text is read as dictionaries where the file has them,
    and each row's decoded size is known before it is decoded: a small file whose
    dictionary makes gigabytes (a bomb) is refused within BUDGET and MAX_EVENT_BYTES."""
    arrow = parquet_library()
    if arrow is None:
        raise UndecodableObject("it is Parquet: install the pyarrow package for the Python "
                                "NXLog runs")
    copies = []
    try:
        source = _arrow_source(arrow, body, copies)
        metadata = arrow.parquet.ParquetFile(source).metadata
        _check_parquet_size(metadata, budget)
        source.seek(0)
        schema = metadata.schema.to_arrow_schema()
        more = (schema.metadata or {}).get(MORE_FIELDS.encode())
        more = more and more.decode("utf-8", "replace")
        texts = [field.name for field in schema if arrow.types.is_string(field.type) or
                 arrow.types.is_binary(field.type)]
        parquet = arrow.parquet.ParquetFile(source, metadata=metadata, read_dictionary=texts)
        for batch in parquet.iter_batches(batch_size=1024):
            sizes = _parquet_row_sizes(arrow, batch)
            if max_event_bytes and max(sizes, default=0) > max_event_bytes:
                raise UndecodableObject(_too_large("a row", max_event_bytes))
            for start, length, size in _pieces(sizes):
                budget.take(size)
                piece, names = batch.slice(start, length), batch.schema.names
                columns = [_parquet_column(arrow, name, column)
                           for name, column in zip(names, piece.columns)]
                for values in zip(*columns):
                    event = {name: value for name, value in zip(names, values)
                             if value is not None}
                    if more in event:  # the fields beyond the writer's PARQUET_COLUMNS
                        event.update(_json_fields(event.pop(more).encode(
                            "utf-8", "surrogatepass")))
                    yield event
    except (arrow.ArrowException, OSError) as exc:
        raise UndecodableObject("not a Parquet file it can read: %s" % exc) from None
    finally:
        for copy in copies:
            copy.close()


                                     # JSON object, the fields beyond the writer's columns


def _check_parquet_size(metadata, budget):
    """Refuses a file whose pages, uncompressed, are larger than BUDGET allows, before any
    is read."""
    size = sum(group.column(index).total_uncompressed_size
               for group in map(metadata.row_group, range(metadata.num_row_groups))
               for index in range(group.num_columns))
    if budget.beyond(size):
        raise budget.refused()
