"""The reader's peak memory under the bombs of tests/hostile.py: python bomb_rss.py [--event MB]

In a process of its own (so that its peak RSS is the reader's; the bombs are made in another
one), with moto's in-process S3: puts every bomb, and with --event one event of MB MiB,
between two good objects, reads them all through the stub as NXLog calls
read_data (MAX_ATTEMPTS=1), and prints one JSON object: the peak RSS in MB, whether the
object after the bombs came, and the longest read_data call in seconds."""

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

import nxlog_stub  # noqa: E402,F401  (registers the stub as `nxlog`)
from hostile import (  # noqa: E402
    deeply_nested,
    empty_lines_bomb,
    json_lines,
    parquet_dictionary_bomb,
    parquet_huge_event,
)
from nxlog_stub import api  # noqa: E402
from nxlog_stub.runner import load_script  # noqa: E402

api.echo = lambda level, message: print(level, message, file=sys.stderr, flush=True)

import pickle  # noqa: E402  (our own bodies, made by our own child process)
import subprocess  # noqa: E402


def bombs(event_mb):
    made = [empty_lines_bomb(), parquet_dictionary_bomb(), parquet_huge_event(),
            deeply_nested()]
    if event_mb:
        made.append(json_lines({"raw_event": "z" * (event_mb << 20)}))
    return made


def peak_rss_mb():
    """This process's peak RSS (VmHWM: unlike getrusage's, not inherited across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def main():
    event_mb = int(sys.argv[sys.argv.index("--event") + 1]) if "--event" in sys.argv else 0
    if "--make" in sys.argv:
        sys.stdout.buffer.write(pickle.dumps(bombs(event_mb)))
        return
    made = pickle.loads(subprocess.run([sys.executable, __file__, "--make"] + sys.argv[1:],
                                       capture_output=True, check=True).stdout)
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "NXLOG_S3_BUCKET": "bombs",
                       "NXLOG_S3_SERVER": "web01", "NXLOG_S3_MAX_ATTEMPTS": "1",
                       "NXLOG_S3_POLL_INTERVAL": "0.05"})
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="bombs")
        keys = ["web01/2026-03-01/10.00.%02d.1" % second for second in range(len(made) + 2)]
        bodies = [json_lines({"raw_event": "before"})] + made + \
            [json_lines({"raw_event": "after"})]
        for key, (body, metadata) in zip(keys, bodies):
            client.put_object(Bucket="bombs", Key=key, Body=body, Metadata=metadata)
        del bodies, made
        baseline = peak_rss_mb()
        reader = load_script(os.path.join(ROOT, "s3_read.py"), "s3")
        module, seen, longest = api.input_module("s3"), set(), 0.0
        module.deliver = lambda event: seen.add(event.get_field("raw_event")[:5])  # as NXLog
        for _ in range(10000):                                   # takes each event at post()
            started = time.monotonic()
            delay, _ = api.call_read_data(reader.read_data, module)
            longest = max(longest, time.monotonic() - started)
            if delay == reader.instance.settings.POLL_INTERVAL:
                break
            time.sleep(delay)
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "rss_before_reading_mb": baseline,
                      "after": "after" in seen, "longest_call_s": round(longest, 2)}))


if __name__ == "__main__":
    main()
