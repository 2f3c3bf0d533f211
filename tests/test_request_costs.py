"""bench/request_costs.py's model, checked against the requests one reader makes in an hour
of its own clock (a SteppedClock moved on by POLL_INTERVAL between calls, as NXLog calls
read_data once caught up), on a bucket where nothing new lands: the README's figures come
from that model."""

import os
import sys

import boto3
import pytest

from helpers import JSON_LINES, ROOT, SteppedClock, batch, poll, put

sys.path.insert(0, os.path.join(ROOT, "bench"))
from request_costs import requests_per_hour  # noqa: E402

SERVERS = ["srv%02d" % number for number in range(10)]
POLL = 10


@pytest.mark.parametrize("queue", [False, True], ids=["polling", "with NOTIFY_QUEUE"])
def test_a_quiet_hour_costs_the_requests_the_model_says(s3, settings, build, queue):
    for server in SERVERS:
        put(s3, "%s/2026-03-01/10.00.00.1.jsonl.gz" % server, batch(server), JSON_LINES)
    settings(COORDINATION="s3", SERVER="*", POLL_INTERVAL=POLL)
    if queue:
        settings(NOTIFY_QUEUE=boto3.client("sqs").create_queue(QueueName="costs")["QueueUrl"])
    clock = SteppedClock()
    reader = build("s3_read", clock=clock, client=s3)
    counted = {"LIST": 0, "PUT": 0}

    def count(params, model, **_):
        if model.name == "ListObjectsV2":
            counted["LIST"] += 1
        elif "/readers/" in params["url_path"]:
            counted["PUT"] += 1
    s3.meta.events.register("before-call.s3.ListObjectsV2", count)
    s3.meta.events.register("before-call.s3.PutObject", count)
    calls = int(3600 / POLL)
    for _ in range(calls):
        delay, _ = poll(reader)
        assert delay == POLL  # caught up at every call
        clock.step(POLL)
    model = requests_per_hour(len(SERVERS), 1, queue, poll=POLL)
    print("a quiet hour, 10 servers, 1 reader, queue %s: counted %s, model %s" % (
        queue, counted, model))
    assert counted["PUT"] == model["PUT"]
    assert abs(counted["LIST"] - model["LIST"]) <= 0.02 * model["LIST"], (counted, model)
