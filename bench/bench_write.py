"""Benchmark of s3_write.py against moto server on 127.0.0.1 (started here).

    .venv/bin/python bench/bench_write.py [--events 1000000] [--endpoint URL] [--rtt MS]

--endpoint measures against an S3 endpoint that is already running on this machine (for
example radosgw from tests/servers/ceph-rgw-start.sh, access key and secret `test`) instead.
--rtt adds a round trip of MS milliseconds to every request of every mode, as a network
between the writer and S3 would (20 is typical within an AWS region).

Each mode runs in a process of its own (so that its peak RSS is its own) and drives
write_data through the stub, from the first event until S3 holds every one of them:
- baseline: what the old scripts did, a new boto3 client and one PUT per event;
- one object per event: s3_write.py's default (BATCH_EVENTS=1, FORMAT=raw), spool included;
- batches: BATCH_EVENTS=100000 (closed at BATCH_BYTES, 8 MiB, or BATCH_AGE=1 s),
  gzip-compressed JSON lines;
- age: the time from the last event to its batch in S3, with no further event;
- floor: the least a durable write_data does (every field read through the API, one JSON line,
  one write() to a file), on as many events as batches.
Prints events per second, PUT requests per million events, bytes stored per event, peak RSS,
the ratios to the baseline, and the batched writer's rate over the floor's. moto server
answers every request with `Connection: close`, so these figures understate what reusing
connections buys against real S3.
"""

import argparse
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

PUT_OPERATIONS = ("PutObject", "UploadPart")


def bucket_usage(client, bucket):
    objects = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            objects += 1
            size += item["Size"]
    return objects, size


def events(count):
    from nxlog_stub import api
    module = api.output_module("s3")
    received = api.local_time_string()
    lines = sample_lines()
    for number in range(count):
        yield api.new_event(module, {"raw_event": lines[number % len(lines)],
                                     "EventReceivedTime": received,
                                     "SourceModuleName": "app", "SourceModuleType": "im_file"})


def run_baseline(count, bucket):
    """The old scripts' way: a new client (from boto3's default session, which keeps the
    service models it loaded) and one PUT for every event."""
    import boto3
    started = time.perf_counter()
    for number, event in enumerate(events(count)):
        emulate_round_trip(boto3.client("s3")).put_object(
            Bucket=bucket, Key="baseline/%d" % number,
            Body=event.get_field("raw_event").encode())
    return {"seconds": time.perf_counter() - started, "puts": count}


def run_writer(count, bucket):
    """s3_write.py as NXLog loads it, with the settings in the environment."""
    import nxlog_stub  # noqa: F401
    from nxlog_stub import api
    from nxlog_stub.runner import load_script
    writer = load_script(os.path.join(SCRIPTS, "s3_write.py"), "s3")
    puts = []
    emulate_round_trip(writer.instance.client).meta.events.register(
        "before-call.s3", lambda model, **kwargs: puts.append(1)
        if model.name in PUT_OPERATIONS else None)
    started = time.perf_counter()
    for event in events(count):
        if not api.call_write_data(writer.write_data, event):
            raise SystemExit("write_data refused an event: %s" % api.logged("ERROR"))
    accepted = time.perf_counter() - started
    while writer.instance.spool.pending():
        time.sleep(0.005)
    return {"seconds": time.perf_counter() - started, "accepted_seconds": accepted,
            "puts": len(puts)}


def run_floor(count, bucket):
    """The least a durable write_data does: read every field through NXLog's API, make one
    JSON line and write() it to a file. No spool, no batches, no upload: the floor the
    batched writer is measured against."""
    folder = os.environ["NXLOG_S3_SPOOL_DIR"]
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, "floor"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write_data(event):
        fields = {name: event.get_field(name) for name in event.field_names()}
        os.write(fd, (json.dumps(fields, separators=(",", ":")) + "\n").encode())
    started = time.perf_counter()
    for event in events(count):
        write_data(event)
    os.close(fd)
    return {"seconds": time.perf_counter() - started, "puts": 0}


def run_age(count, bucket):
    """Seconds from the last event to its batch in S3, with no further event."""
    import boto3

    import nxlog_stub  # noqa: F401
    from nxlog_stub import api
    from nxlog_stub.runner import load_script
    writer = load_script(os.path.join(SCRIPTS, "s3_write.py"), "s3")
    emulate_round_trip(writer.instance.client)
    client = boto3.client("s3")
    for event in events(count):
        api.call_write_data(writer.write_data, event)
    last_event = time.perf_counter()
    while bucket_usage(client, bucket)[0] == 0:
        time.sleep(0.05)
    return {"seconds": time.perf_counter() - last_event, "puts": 1}


MODES = {
    "baseline": (run_baseline, {}),
    "one object per event": (run_writer, {}),
    # BATCH_AGE=1: the last, partial batch goes up a second after the last event, not 60.
    "batches": (run_writer, {"NXLOG_S3_BATCH_EVENTS": "100000", "NXLOG_S3_BATCH_AGE": "1"}),
    "age": (run_age, {"NXLOG_S3_BATCH_EVENTS": "100000", "NXLOG_S3_BATCH_AGE": "2"}),
    "parquet batches": (run_writer, {"NXLOG_S3_BATCH_EVENTS": "100000", "NXLOG_S3_BATCH_AGE": "1",
                                     "NXLOG_S3_FORMAT": "parquet"}),
    "floor": (run_floor, {}),
}


def child(mode, count, bucket):
    """Runs one mode in this process and prints its figures as JSON."""
    import boto3
    function = MODES[mode][0]
    result = function(count, bucket)
    objects, size = bucket_usage(boto3.client("s3"), bucket)
    result.update(events=count, objects=objects, bytes=size, rss_mb=peak_rss_mb())
    print(json.dumps(result))


def measure(mode, count, endpoint, key, workdir, rtt=0):
    import boto3
    bucket = "bench-%s-%d" % (mode.replace(" ", "-"), int(time.time() * 1000) % 10**9)
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=key,
               AWS_SECRET_ACCESS_KEY=key, AWS_DEFAULT_REGION="us-east-1",
               NXLOG_S3_BUCKET=bucket, NXLOG_S3_SERVER="bench",
               NXLOG_S3_SPOOL_DIR=os.path.join(workdir, bucket), BENCH_RTT_MS=str(rtt),
               **MODES[mode][1])
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=key,
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    output = subprocess.run([sys.executable, __file__, "--child", mode, "--events", str(count),
                             "--bucket", bucket], env=env, capture_output=True, text=True,
                            check=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]), bucket=bucket)


def report(results, batch_age):
    base = results["baseline"]
    base_rate = base["events"] / base["seconds"]
    print("%-22s %10s %12s %14s %12s %9s %10s" % (
        "mode", "events", "events/s", "PUTs/million", "bytes/event", "peak RSS", "x baseline"))
    for mode in ("baseline", "one object per event", "batches"):
        r = results[mode]
        rate = r["events"] / r["seconds"]
        print("%-22s %10d %12.0f %14.0f %12.1f %7.0f MB %10.1f" % (
            mode, r["events"], rate, r["puts"] * 1e6 / r["events"], r["bytes"] / r["events"],
            r["rss_mb"], rate / base_rate))
    batches = results["batches"]
    print("batches: write_data took %.0f events/s; %d objects for %d events"
          % (batches["events"] / batches["accepted_seconds"], batches["objects"],
             batches["events"]))
    print("age: the last batch was in S3 %.2f s after the last event (BATCH_AGE=%s s, "
          "target: within BATCH_AGE + 2 s)" % (results["age"]["seconds"], batch_age))
    floor_rate = results["floor"]["events"] / results["floor"]["seconds"]
    print("floor: %.0f events/s; the batched writer over the floor: write_data %.2f, until "
          "S3 held every event %.2f" % (
              floor_rate, batches["events"] / batches["accepted_seconds"] / floor_rate,
              batches["events"] / batches["seconds"] / floor_rate))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000000, help="events for batch mode")
    parser.add_argument("--single-events", type=int, default=2000,
                        help="events for one object per event")
    parser.add_argument("--baseline-events", type=int, default=2000)
    add_endpoint_options(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.events, args.bucket)
    counts = {"baseline": args.baseline_events, "one object per event": args.single_events,
              "batches": args.events, "age": 1000, "floor": args.events}
    with endpoint(args) as (url, key), tempfile.TemporaryDirectory() as workdir:
        results = {}
        for mode in ("baseline", "one object per event", "batches", "age", "floor"):
            results[mode] = measure(mode, counts[mode], url, key, workdir, args.rtt)
            print("measured %s: %s" % (mode, json.dumps(results[mode])), flush=True)
    report(results, MODES["age"][1]["NXLOG_S3_BATCH_AGE"])


if __name__ == "__main__":
    main()
