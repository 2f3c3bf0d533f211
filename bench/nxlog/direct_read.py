"""im_python for bench/nxlog_bench.py: the plain reader with NXLog's C library called
directly (no wrapper frames) and json's scanner called directly: the most any reader written
in Python can make of NXLog's calls, the ceiling s3_read.py is held under."""

import gzip
import json
import json.scanner
import os

import boto3
import libpynxlog

client = boto3.client("s3")
keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
    Bucket=os.environ["BENCH_BUCKET"], Prefix=os.environ["BENCH_PREFIX"])
    for item in page.get("Contents", ())]
scan = json.scanner.make_scanner(json.JSONDecoder())


def read_data(module):
    if not keys:
        return
    body = client.get_object(Bucket=os.environ["BENCH_BUCKET"], Key=keys.pop(0))["Body"].read()
    c_module, new, set_field, post = (module.c_module, libpynxlog.logdata_new,
                                      libpynxlog.set_logdata_field, libpynxlog.post_logdata)
    for line in gzip.decompress(body).decode().splitlines():
        c_logdata = new()
        for name, value in scan(line, 0)[0].items():
            set_field(c_module, c_logdata, name, value)
        post(c_module, c_logdata)
    module.set_read_timer(0.001)
