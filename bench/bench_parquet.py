"""Benchmark of Parquet batches beside gzip JSON lines, against moto server on 127.0.0.1.

    .venv/bin/python bench/bench_parquet.py [--events 1000000] [--endpoint URL] [--rtt MS]

For each format, s3_write.py stores --events events in batches of 100,000 (BATCH_AGE=1 s),
from the first write_data call until S3 holds every event, then s3_read.py reads them all
back, each in a process of its own (bench_write.py's and bench_read.py's modes). Prints
events per second written (write_data, and until in S3) and read, the bytes stored per
million events, and what a query of one column (EventReceivedTime) reads: the whole object
for JSON lines, that column's chunks for Parquet. Needs pyarrow.
"""

import argparse
import os
import sys
import tempfile

import boto3
import pyarrow.parquet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_read  # noqa: E402
import bench_write  # noqa: E402
from common import add_endpoint_options, endpoint  # noqa: E402

FORMATS = (("JSON lines (gzip)", "batches"), ("Parquet (zstd)", "parquet batches"))


def column_bytes(client, bucket, column):
    """The compressed bytes of COLUMN in every Parquet object of BUCKET: what a query of that
    column alone reads."""
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            with tempfile.TemporaryFile() as copy:
                client.download_fileobj(bucket, item["Key"], copy)
                metadata = pyarrow.parquet.ParquetFile(copy).metadata
                names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
                total += sum(metadata.row_group(group).column(names.index(column))
                             .total_compressed_size for group in range(metadata.num_row_groups))
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000000)
    add_endpoint_options(parser)
    args = parser.parse_args()
    results = {}
    with endpoint(args) as (url, key), tempfile.TemporaryDirectory() as workdir:
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id=key,
                              aws_secret_access_key=key, region_name="us-east-1")
        for name, mode in FORMATS:
            wrote = bench_write.measure(mode, args.events, url, key, workdir, args.rtt)
            read = bench_read.measure("reader", wrote["bucket"], url, key, args.rtt)
            assert read["events"] == args.events, read
            scanned = wrote["bytes"] if mode == "batches" else column_bytes(
                client, wrote["bucket"], "EventReceivedTime")
            results[name] = dict(wrote, read_seconds=read["seconds"], scanned=scanned)
    print("%-18s %10s %14s %14s %12s %18s %20s" % (
        "format", "events", "write_data/s", "into S3/s", "read/s", "bytes/million",
        "one column/million"))
    for name, r in results.items():
        per_million = 1e6 / r["events"]
        print("%-18s %10d %14.0f %14.0f %12.0f %18.0f %20.0f" % (
            name, r["events"], r["events"] / r["accepted_seconds"], r["events"] / r["seconds"],
            r["events"] / r["read_seconds"], r["bytes"] * per_million, r["scanned"] * per_million))
    jsonl, parquet = (results[name] for name, _ in FORMATS)
    print("Parquet over JSON lines: write_data %.2f, into S3 %.2f, read %.2f, bytes stored %.2f, "
          "bytes a one-column query reads %.3f" % (
              jsonl["accepted_seconds"] / parquet["accepted_seconds"],
              jsonl["seconds"] / parquet["seconds"],
              jsonl["read_seconds"] / parquet["read_seconds"],
              parquet["bytes"] / jsonl["bytes"], parquet["scanned"] / jsonl["scanned"]))


if __name__ == "__main__":
    main()
