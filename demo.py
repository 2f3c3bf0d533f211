"""The main job end to end, on this machine alone: `make demo` runs it.

Starts moto's S3 server on 127.0.0.1, ships a sample log through conf/s3-write.conf
(im_file -> om_python s3_write.py) in batches, as the README advises, reads it back through
conf/s3-read.conf (im_python s3_read.py -> om_file), both run by `python -m nxlog_stub` as
NXLog would run them, and shows what happened. Exits 1 if what came back differs from what
went in.
"""

import logging
import os
import shutil
import subprocess
import sys
import time

import boto3
from moto.server import ThreadedMotoServer

ROOT = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(ROOT, "demo-output")
BUCKET = "nxlog-demo"
# Batches, as the README advises; the first closes a second after its first event, within
# the stub's idle time (a real one would use BATCH_EVENTS=100000 and the default BATCH_AGE).
BATCHES = {"NXLOG_S3_BATCH_EVENTS": "10000", "NXLOG_S3_BATCH_AGE": "1"}
SHOWN_SETTINGS = ["NXLOG_S3_BUCKET", "NXLOG_S3_SERVER"] + sorted(BATCHES)


def sample_lines():
    """A web server's log: a quiet start, then a burst."""
    lines = ["10.0.0.%d - - GET /page/%d HTTP/1.1 200" % (n % 7, n) for n in range(8)]
    lines += ["10.0.0.9 - - GET /burst/%d HTTP/1.1 503 r\u00e9essayer" % n for n in range(25)]
    return lines


def run_conf(conf, defines, env):
    command = [sys.executable, "-m", "nxlog_stub", os.path.join(ROOT, "conf", conf),
               "--idle", "1.5"]
    for name, value in dict(defines, ROOT=WORK).items():
        command += ["--define", "%s=%s" % (name, value)]
    print("$ %s python -m nxlog_stub conf/%s ..." % (" ".join(
        "%s=%s" % (name, env[name]) for name in SHOWN_SETTINGS), conf))
    result = subprocess.run(command, env=env, cwd=WORK, capture_output=True, text=True)
    print(result.stdout.rstrip())
    if result.returncode != 0:
        print(result.stderr.rstrip())
        raise SystemExit("demo: %s failed with exit code %d" % (conf, result.returncode))
    return result


def ship(source, env):
    """Runs the writer's conf; while its spool still holds events when the runner stops (it
    stops once its input is idle, NXLog would not), starts it again, as a restarted NXLog
    would: a writer uploads what it left in its spool first."""
    spool = os.path.join(WORK, "s3_write.spool")
    for _ in range(10):
        run_conf("s3-write.conf", {"SCRIPTDIR": ROOT, "LOGFILE": source}, env)
        waiting = [name for name in os.listdir(spool) if name.endswith((".data", ".open"))]
        if not waiting:
            return
        print("%d batches still in the spool: starting the writer again to upload them\n"
              % len(waiting))
    raise SystemExit("demo: the spool %s did not empty" % spool)


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = "http://%s:%d" % (host, port)
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="demo",
                   AWS_SECRET_ACCESS_KEY="demo", AWS_DEFAULT_REGION="us-east-1",
                   NXLOG_S3_BUCKET=BUCKET, NXLOG_S3_SERVER="demo-host",
                   NXLOG_S3_POLL_INTERVAL="0.5",
                   NXLOG_S3_CHECKPOINT=os.path.join(WORK, "lastkey.log"), PYTHONPATH=ROOT,
                   **BATCHES)
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="demo",
                              aws_secret_access_key="demo", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)  # the demo's own bucket: the scripts never create one
        print("moto S3 server on %s, bucket %s\n" % (endpoint, BUCKET))

        lines = sample_lines()
        source, restored = os.path.join(WORK, "app.log"), os.path.join(WORK, "app-from-s3.log")
        with open(source, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))

        started = time.monotonic()
        ship(source, env)
        keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET) for item in page.get("Contents", ())]
        print("\n%d lines stored in s3://%s/ as %d batch object%s (gzip-compressed JSON "
              "lines, every field):" % (len(lines), BUCKET, len(keys), "" if len(keys) == 1
                                         else "s"))
        for key in keys:
            head = client.head_object(Bucket=BUCKET, Key=key)
            print("  %s: %s events, %d bytes, stored by nxlog-s3 %s" % (
                key, head["Metadata"]["nxlog-s3-events"], head["ContentLength"],
                head["Metadata"]["nxlog-s3-release"]))
        print()
        run_conf("s3-read.conf", {"SCRIPTDIR": ROOT, "OUTFILE": restored}, env)

        with open(restored, encoding="utf-8") as handle:
            back = handle.read().splitlines()
        same = back == lines
        print("\n%d lines shipped, %d object%s stored, %d lines read back in %.1f s: %s"
              % (len(lines), len(keys), "" if len(keys) == 1 else "s", len(back),
                 time.monotonic() - started,
                 "identical, in order" if same else "DIFFERENT"))
        print("files: %s (sent), %s (read back), %s (checkpoint)"
              % (os.path.relpath(source), os.path.relpath(restored),
                 os.path.relpath(env["NXLOG_S3_CHECKPOINT"])))
        return 0 if same else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
