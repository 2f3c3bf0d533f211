"""im_python for bench/nxlog_bench.py: the least a reader of batches does, one object a call:
a GET, gunzip, json.loads per line, set_field per field, post. No checkpoint, no order, no
bounds, no zoned times made NXLog's: the floor s3_read.py is measured against."""

import gzip
import json
import os

import boto3

client = boto3.client("s3")
keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
    Bucket=os.environ["BENCH_BUCKET"], Prefix=os.environ["BENCH_PREFIX"])
    for item in page.get("Contents", ())]


def read_data(module):
    if not keys:
        return
    body = client.get_object(Bucket=os.environ["BENCH_BUCKET"], Key=keys.pop(0))["Body"].read()
    for line in gzip.decompress(body).splitlines():
        event = module.logdata_new()
        for name, value in json.loads(line).items():
            event.set_field(name, value)
        event.post()
    module.set_read_timer(0.001)
