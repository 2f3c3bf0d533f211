"""Benchmark of s3_read.py against moto server on 127.0.0.1 (started here).

    .venv/bin/python bench/bench_read.py [--events 1000000] [--big-mb 1024] [--endpoint URL]
                                         [--rtt MS]

--endpoint measures against an S3 endpoint that is already running on this machine (for
example radosgw from tests/servers/ceph-rgw-start.sh, access key and secret `test`) instead.
--rtt adds a round trip of MS milliseconds to every request of every mode, as a network
between the reader and S3 would (20 is typical within an AWS region).

Each mode reads in a process of its own (so that its peak RSS is its own), through the stub's
read_data as NXLog calls it, every event handed over as it is posted:
- baseline: what the old scripts did, one GET and a checkpoint write per object;
- one object per event: s3_read.py on the same objects;
- batches: s3_read.py on --events events in gzip-compressed JSON-line objects of 10,000;
- plain reader, batches: the least a reader does on the same objects (a GET each, gunzip,
  json.loads, set_field, post: no checkpoint, no order, no bounds);
- one big object: s3_read.py on one batch of --big-mb MB uncompressed, for its peak RSS.
Prints events per second, LIST and GET requests per million events, peak RSS, the ratios to
the baseline, and s3_read.py's rate in batches over the plain reader's. moto server closes
every connection: real S3 and radosgw answer faster.
"""

import argparse
import concurrent.futures
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# The folder of the script measured: this checkout's, or another's (bench/compare.py).
SCRIPTS = os.environ.get("BENCH_SCRIPTS") or ROOT

from common import add_endpoint_options, emulate_round_trip, endpoint, peak_rss_mb, sample_lines  # noqa: E402

BATCH = {"nxlog-s3-format": "jsonl", "nxlog-s3-compression": "gzip"}
PER_BATCH = 10000


def json_line(number, lines):
    return json.dumps({"raw_event": lines[number % len(lines)],
                       "EventReceivedTime": "2026-11-27 10:00:00",
                       "SourceModuleName": "app", "SourceModuleType": "im_file"}).encode() + b"\n"


def key(number):
    """Ten objects a second, from 2026-03-01 00:00:00."""
    return "bench/%s.%d" % (time.strftime("%Y-%m-%d/%H.%M.%S", time.gmtime(
        1772323200 + number // 10)), number % 10 + 1)


def fill_single(client, bucket, count):
    lines = sample_lines()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda number: client.put_object(
            Bucket=bucket, Key=key(number), Body=lines[number % len(lines)].encode(),
            Metadata={"nxlog-s3-format": "raw", "nxlog-s3-compression": "none"}), range(count)))


def fill_batches(client, bucket, count):
    lines = sample_lines()
    for number in range(count // PER_BATCH):
        body = b"".join(json_line(event, lines) for event in range(
            number * PER_BATCH, (number + 1) * PER_BATCH))
        client.put_object(Bucket=bucket, Key=key(number), Body=gzip.compress(body, 6),
                          Metadata=BATCH)


def fill_big(client, bucket, megabytes):
    """One batch of MEGABYTES MB of JSON lines, compressed as it is made, in a temporary file."""
    lines, written, events = sample_lines(), 0, 0
    with tempfile.TemporaryFile() as body:
        with gzip.GzipFile(fileobj=body, mode="wb", compresslevel=1) as packed:
            while written < megabytes * 1024 * 1024:
                chunk = b"".join(json_line(events + n, lines) for n in range(10000))
                packed.write(chunk)
                written += len(chunk)
                events += 10000
        body.seek(0)
        client.upload_fileobj(body, bucket, key(0), ExtraArgs={"Metadata": BATCH})
    return events


def read_as_the_old_scripts(bucket, checkpoint):
    """One GET per object and the key written to a plain checkpoint after each."""
    import boto3

    import nxlog_stub  # noqa: F401
    from nxlog_stub import api
    client, module, events = emulate_round_trip(boto3.client("s3")), api.input_module("s3"), 0
    requests = count_requests(client)
    started = time.perf_counter()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                               Prefix="bench/"):
        for item in page.get("Contents", ()):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            event = module.logdata_new()
            event.set_field("raw_event", body.decode())
            event.post()
            module.take_posted()
            events += 1
            with open(checkpoint, "w") as handle:
                handle.write(item["Key"])
    return events, requests, time.perf_counter() - started


def read_plainly(bucket, checkpoint):
    """The least a reader of batches does: a GET per object, gunzip, json.loads per line,
    set_field per field, post. No checkpoint, no order, no bounds: the floor s3_read.py is
    measured against."""
    import boto3

    import nxlog_stub  # noqa: F401
    from nxlog_stub import api
    client, module, events = emulate_round_trip(boto3.client("s3")), api.input_module("s3"), 0
    requests = count_requests(client)
    module.deliver = lambda event: None  # NXLog takes each event as it is posted
    started = time.perf_counter()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                               Prefix="bench/"):
        for item in page.get("Contents", ()):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for line in gzip.decompress(body).splitlines():
                event = module.logdata_new()
                for name, value in json.loads(line).items():
                    event.set_field(name, value)
                event.post()
                events += 1
    return events, requests, time.perf_counter() - started


def read_with_s3_read(bucket, checkpoint):
    import nxlog_stub  # noqa: F401
    from nxlog_stub import api
    from nxlog_stub.runner import load_script
    reader = load_script(os.path.join(SCRIPTS, "s3_read.py"), "s3")
    requests = count_requests(emulate_round_trip(reader.instance.client))
    module, events = api.input_module("s3"), [0]

    def count(event):
        events[0] += 1
    module.deliver = count  # NXLog takes each event as it is posted
    started = time.perf_counter()
    while True:
        delay, _ = api.call_read_data(reader.read_data, module)
        if delay == reader.instance.settings.POLL_INTERVAL:
            if api.logged("ERROR"):
                raise SystemExit(api.logged("ERROR"))
            return events[0], requests, time.perf_counter() - started


def count_requests(client):
    requests = {"ListObjectsV2": 0, "GetObject": 0}

    def counted(model, **kwargs):
        if model.name in requests:
            requests[model.name] += 1
    client.meta.events.register("before-call.s3", counted)
    return requests


def child(mode, bucket):
    """Reads BUCKET in this process, timed from the first read (client and script loaded)
    to the last event posted, and prints the figures as JSON."""
    function = {"baseline": read_as_the_old_scripts, "plain": read_plainly}.get(
        mode, read_with_s3_read)
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["NXLOG_S3_CHECKPOINT"] = os.path.join(workdir, "checkpoint")
        events, requests, seconds = function(bucket, os.environ["NXLOG_S3_CHECKPOINT"])
    print(json.dumps({"events": events, "seconds": seconds,
                      "lists": requests["ListObjectsV2"], "gets": requests["GetObject"],
                      "rss_mb": peak_rss_mb()}))


def measure(mode, bucket, endpoint, key, rtt=0):
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=key,
               AWS_SECRET_ACCESS_KEY=key, AWS_DEFAULT_REGION="us-east-1",
               NXLOG_S3_BUCKET=bucket, NXLOG_S3_SERVER="bench", NXLOG_S3_POLL_INTERVAL="5",
               BENCH_RTT_MS=str(rtt))
    output = subprocess.run([sys.executable, __file__, "--child", mode, "--bucket", bucket],
                            env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    print("measured %s: %s" % (mode, json.dumps(result)), flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000000, help="events in batches")
    parser.add_argument("--single-events", type=int, default=2000,
                        help="objects of one event each")
    parser.add_argument("--big-mb", type=int, default=1024,
                        help="uncompressed size of the one big object")
    add_endpoint_options(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.bucket)
    import boto3
    buckets = {name: "bench-read-%s-%d" % (name, int(time.time() * 1000) % 10**9)
               for name in ("single", "batches", "big")}
    with endpoint(args) as (url, key):
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id=key,
                              aws_secret_access_key=key, region_name="us-east-1")
        for bucket in buckets.values():
            client.create_bucket(Bucket=bucket)
        fill_single(client, buckets["single"], args.single_events)
        fill_batches(client, buckets["batches"], args.events)
        big_events = fill_big(client, buckets["big"], args.big_mb)
        print("buckets filled: %d objects of one event, %d events in batches of %d, one "
              "object of %d MB (%d events)" % (args.single_events, args.events, PER_BATCH,
                                               args.big_mb, big_events), flush=True)
        results = {mode: measure(child_mode, buckets[kind], url, key, args.rtt)
                   for mode, child_mode, kind in (
                       ("baseline", "baseline", "single"),
                       ("one object per event", "reader", "single"),
                       ("batches", "reader", "batches"),
                       ("plain reader, batches", "plain", "batches"),
                       ("one big object", "reader", "big"))}
    base_rate = results["baseline"]["events"] / results["baseline"]["seconds"]
    print("%-22s %10s %12s %14s %14s %9s %10s" % ("mode", "events", "events/s", "LIST/million",
                                                  "GET/million", "peak RSS", "x baseline"))
    for mode, r in results.items():
        rate = r["events"] / r["seconds"]
        print("%-22s %10d %12.0f %14.1f %14.1f %7.0f MB %10.1f" % (
            mode, r["events"], rate, r["lists"] * 1e6 / r["events"], r["gets"] * 1e6 / r["events"],
            r["rss_mb"], rate / base_rate))
    print("s3_read.py over the plain reader, batches: %.2f" % (
        results["batches"]["events"] / results["batches"]["seconds"] /
        (results["plain reader, batches"]["events"] /
         results["plain reader, batches"]["seconds"])))


if __name__ == "__main__":
    main()
