"""Objects a hostile (or broken) writer can put in a bucket, each as (body, metadata), for the
tests under the stub and under a real NXLog. What the reader must do with each is in
HOSTILE: post its events as NXLog can take them ("read"), or set it aside ("set aside");
either way it names the object, and the objects after it come."""

import functools
import gzip
import io
import json
import zlib

JSON_LINES = {"nxlog-s3-format": "jsonl", "nxlog-s3-compression": "gzip"}
PARQUET = {"nxlog-s3-format": "parquet", "nxlog-s3-compression": "none"}


def json_lines(*events):
    """A batch as s3_write.py stores one: gzip-compressed JSON lines (json.dumps escapes
    NULs and lone surrogates, as any JSON writer may)."""
    return gzip.compress(b"".join(json.dumps(event).encode() + b"\n" for event in events)), \
        JSON_LINES


def deeply_nested(depth=100000):
    line = b'{"raw_event": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}\n"
    return gzip.compress(line), JSON_LINES


def truncated_gzip():
    body, metadata = json_lines(*({"raw_event": "cut %d" % n} for n in range(50)))
    return body[:len(body) // 2], metadata


@functools.lru_cache(maxsize=None)
def empty_lines_bomb(size=64 << 20):
    """SIZE newlines, gzip-compressed (a thousand times smaller): a batch of no event that
    once held read_data for 50 s."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\n" * (1 << 20)
    body = b"".join(compressor.compress(chunk) for _ in range(size >> 20)) + compressor.flush()
    return body, JSON_LINES


def parquet_body(table, **options):
    import pyarrow.parquet
    target = io.BytesIO()
    pyarrow.parquet.write_table(table, target, **options)
    return target.getvalue()


def parquet_date_overflow():
    """A Parquet date32 of 2**31-1 days, which no Python date holds (OverflowError)."""
    import pyarrow
    table = pyarrow.table({"raw_event": ["odd date"],
                           "day": pyarrow.array([2 ** 31 - 1], pyarrow.date32())})
    return parquet_body(table), PARQUET


def odd_parquet(kind, number):
    """A Parquet batch with a column of KIND, a type no writer of ours makes, holding a value
    made of NUMBER (dates beyond Python's, decimals, lists, structs, unsigned 64 bits...)."""
    import decimal

    import pyarrow
    values = {
        "date32": lambda: pyarrow.array([number % 2 ** 31], pyarrow.date32()),
        "date64": lambda: pyarrow.array([number % 2 ** 63], pyarrow.date64()),
        "time64": lambda: pyarrow.array([number % 86400000000], pyarrow.time64("us")),
        "duration": lambda: pyarrow.array([number % 2 ** 63], pyarrow.duration("s")),
        "decimal": lambda: pyarrow.array([decimal.Decimal(number % 10 ** 30) / 1000],
                                         pyarrow.decimal128(38, 3)),
        "uint64": lambda: pyarrow.array([number % 2 ** 64], pyarrow.uint64()),
        "list": lambda: pyarrow.array([[number % 2 ** 63, -(number % 2 ** 63)]]),
        "struct": lambda: pyarrow.array([{"a": number % 2 ** 63, "b": str(number)}]),
        "large_string": lambda: pyarrow.array([str(number)], pyarrow.large_string()),
        "float16": lambda: pyarrow.array([number % 60000], pyarrow.float32()).cast(
            pyarrow.float16(), safe=False) if hasattr(pyarrow, "float16") else
        pyarrow.array([1.5]),
    }[kind]()
    table = pyarrow.table({"raw_event": ["odd %s" % kind], "odd": values})
    return parquet_body(table), PARQUET


ODD_PARQUET_KINDS = ["date32", "date64", "time64", "duration", "decimal", "uint64", "list",
                     "struct", "large_string", "float16"]


@functools.lru_cache(maxsize=None)
def parquet_dictionary_bomb(value_size=1 << 20, rows=4096):
    """A few hundred bytes whose one dictionary value, used by every row, makes ROWS times
    VALUE_SIZE bytes: it took a reader to 1,163 MiB."""
    import pyarrow
    column = pyarrow.DictionaryArray.from_arrays(pyarrow.array([0] * rows, pyarrow.int32()),
                                                 pyarrow.array(["x" * value_size]))
    return parquet_body(pyarrow.table({"raw_event": column}), compression="zstd"), PARQUET


@functools.lru_cache(maxsize=None)
def parquet_huge_event(size=100 << 20):
    """Some kilobytes that make one event of SIZE bytes (past MAX_EVENT_BYTES)."""
    import pyarrow
    table = pyarrow.table({"raw_event": ["y" * size]})
    return parquet_body(table, compression="zstd", use_dictionary=False), PARQUET


# name -> (object builder, what the reader does with it, the fields of its events as NXLog
# gets them where it reads it)
HOSTILE = {
    "a NUL in a field name": (lambda: json_lines({"raw_event": "hostile", "a\x00b": "x"}),
                              "read", {"raw_event": "hostile", "a\\u0000b": "x"}),
    "a lone surrogate as a field name": (
        lambda: json_lines({"raw_event": "hostile", "\udc80": "x"}),
        "read", {"raw_event": "hostile", "\\udc80": "x"}),
    "names that collide once made safe": (
        lambda: json_lines({"raw_event": "hostile", "a\x00": 1, "a\\u0000": 2}),
        "read", {"raw_event": "hostile", "a\\u0000~2": 1, "a\\u0000": 2}),
    "integers beyond 64 bits": (
        lambda: json_lines({"raw_event": "hostile", "big": 2 ** 70, "small": -2 ** 63 - 1}),
        "read", {"raw_event": "hostile", "big": str(2 ** 70), "small": str(-2 ** 63 - 1)}),
    "a NUL in a value": (lambda: json_lines({"raw_event": "a\x00b"}),
                         "read", {"raw_event": "a\\u0000b"}),
    "a field of 2 MiB (NXLog takes 1 MiB)": (
        lambda: json_lines({"raw_event": "long", "text": "\u20ac" * (700 << 10)}),
        "read", {"raw_event": "long", "text": "\u20ac" * 349525}),
    "JSON nested 100,000 deep": (deeply_nested, "set aside", None),
    "a gzip cut short": (truncated_gzip, "set aside", None),
    "64 MiB of empty lines in 65 KB": (empty_lines_bomb, "set aside", None),
    "a Parquet date beyond Python's": (parquet_date_overflow, "read", None),
    "a Parquet dictionary bomb": (parquet_dictionary_bomb, "set aside", None),
    "a Parquet event past MAX_EVENT_BYTES": (parquet_huge_event, "set aside", None),
}
NEEDS_PYARROW = {name for name in HOSTILE if "Parquet" in name}
