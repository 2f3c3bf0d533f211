"""NOTIFY_QUEUE: S3 event notifications from SQS as hints, over HTTP on moto server (S3 and
SQS, the bucket's notifications sent to the queue by moto as S3 sends them)."""

import json
import os
import re
import time

import pytest

from helpers import (
    JSON_LINES,
    ROOT,
    NotificationQueue,
    SteppedClock,
    batch,
    checkpoint,
    free_port,
    poll,
    put,
    read_all,
)
from nxlog_s3.reader.notify import servers_named
from nxlog_stub import api

SERVERS = ["web01", "web02", "web03"]


@pytest.fixture
def queue(moto_server, monkeypatch, settings):
    bucket = moto_server.new_bucket("nxlog-notify")
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    made = NotificationQueue(moto_server, bucket)
    settings(BUCKET=bucket, SERVER=",".join(SERVERS), NOTIFY_QUEUE=made.url,
             FULL_POLL_INTERVAL=3600, POLL_INTERVAL=0.2)
    return made


def key(server, number):
    return "%s/2026-03-01/10.00.%02d.1.jsonl.gz" % (server, number)


def store(queue, server, number):
    put(queue.s3, key(server, number), batch("%s %d" % (server, number)), JSON_LINES,
        bucket=queue.bucket)


def listed_prefixes(reader):
    prefixes = []
    reader.client.meta.events.register("before-call.s3.ListObjectsV2", lambda params, **_:
                                        prefixes.append(params["query_string"]["prefix"]))
    return prefixes


def read_until(reader, expected, seconds=10):
    posted, end = [], time.monotonic() + seconds
    while len(posted) < len(expected) and time.monotonic() < end:
        posted += poll(reader)[1]
        time.sleep(0.05)
    return posted


def wait_for_no_message(queue, reader=None, seconds=10):
    """The messages left once the queue emptied, or SECONDS passed, READER polling."""
    end = time.monotonic() + seconds
    while queue.messages_left() and time.monotonic() < end:
        if reader is not None:
            assert poll(reader)[1] == []
        time.sleep(0.1)
    return queue.messages_left()


def test_with_a_queue_a_poll_lists_only_the_server_news_names_and_deletes_its_message(
        queue, build):
    for server in SERVERS:
        store(queue, server, 0)
    reader = build("s3_read")
    assert sorted(read_all(reader)) == ["web01 0", "web02 0", "web03 0"]
    assert wait_for_no_message(queue, reader) == 0  # the news of what was read already
    prefixes = listed_prefixes(reader)
    store(queue, "web02", 1)
    assert read_until(reader, ["web02 1"]) == ["web02 1"]
    assert set(prefixes) == {"web02/"}
    assert wait_for_no_message(queue, reader) == 0  # each message, once its listing ended


def test_a_lost_message_delays_its_server_by_the_full_poll_interval_at_most(queue, build):
    store(queue, "web01", 0)
    clock = SteppedClock()
    reader = build("s3_read", clock=clock)
    assert read_all(reader) == ["web01 0"]
    assert wait_for_no_message(queue, reader) == 0
    queue.notify(False)  # the next message is lost
    store(queue, "web01", 1)
    time.sleep(0.5)
    assert poll(reader)[1] == []  # no news: not listed
    clock.step(3600)
    assert poll(reader)[1] == ["web01 1"]  # the backstop lists it


def test_duplicated_stale_or_unknown_messages_post_nothing_twice_and_are_deleted(
        queue, build):
    store(queue, "web01", 0)
    reader = build("s3_read")
    assert read_all(reader) == ["web01 0"]
    assert wait_for_no_message(queue, reader) == 0
    for each in (key("web01", 0), key("web01", 0), key("web03", 7), "_nxlog-s3/readers/x",
                 "other-tool/x"):
        queue.send(each)
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody="not a notification")
    time.sleep(1)
    assert read_until(reader, ["nothing"], seconds=2) == []
    assert wait_for_no_message(queue, reader) == 0
    assert any("is no S3 event notification: deleted" in line
               for line in api.logged("WARNING"))


def test_a_message_is_deleted_only_after_the_position_it_led_to_is_saved(
        queue, build, tmp_path):
    reader = build("s3_read")
    assert wait_for_no_message(queue, reader) == 0  # S3's test event, deleted at once
    saved = []
    reader.polls.notifications.client.meta.events.register(
        "before-call.sqs.DeleteMessageBatch",
        lambda **_: saved.append(checkpoint(tmp_path)["servers"].get("web02", {}).get(
            "newest")))
    store(queue, "web02", 5)
    assert read_until(reader, ["web02 5"]) == ["web02 5"]
    assert wait_for_no_message(queue, reader) == 0
    assert saved and set(saved) == {"2026-03-01/10.00.05"}


def test_a_queue_that_does_not_exist_keeps_nxlog_from_starting(moto_server, monkeypatch,
                                                              settings, start_refused):
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    bucket = moto_server.new_bucket("nxlog-notify")
    missing = "%s/123456789012/no-such-queue-%d" % (moto_server.url, free_port())
    settings(BUCKET=bucket, NOTIFY_QUEUE=missing)
    [line] = start_refused("s3_read", endpoint=moto_server.url)
    assert "cannot use the queue NOTIFY_QUEUE=%s: " % missing in line


def test_readers_sharing_a_bucket_hand_back_the_news_of_servers_they_do_not_hold(
        queue, settings, build):
    settings(COORDINATION="s3", SERVER="*", LEASE_SECONDS=6, POLL_INTERVAL=1)
    for server in SERVERS + ["web04"]:
        store(queue, server, 0)
    readers = []
    for name in ("a", "b"):
        settings(READER_NAME=name)
        readers.append(build("s3_read", clock=SteppedClock()))
    posted = []
    for _ in range(6):  # they share the servers out
        for reader in readers:
            posted += poll(reader)[1]
            reader.clock.step(1)
    assert sorted(len(reader.checkpoint.held) for reader in readers) == [2, 2]
    for server in SERVERS + ["web04"]:
        store(queue, server, 1)
    end = time.monotonic() + 20
    while len(posted) < 8 and time.monotonic() < end:
        for reader in readers:
            posted += poll(reader)[1]
        time.sleep(0.1)
    assert sorted(posted) == sorted("%s %d" % (server, number) for number in (0, 1)
                                    for server in SERVERS + ["web04"])


def test_a_notification_names_its_servers_straight_from_s3_or_through_sns():
    record = {"Records": [{"s3": {"object": {"key": "web01/2026-03-01/10.00.00.1+a%2Bb"}}},
                          {"s3": {"object": {"key": "web%2002/x"}}}]}
    assert servers_named(json.dumps(record)) == {"web01"}  # 'web 02' is no server name
    envelope = {"Type": "Notification", "Message": json.dumps(record)}
    assert servers_named(json.dumps(envelope)) == {"web01"}
    assert servers_named(json.dumps({"Event": "s3:TestEvent"})) == set()
    assert servers_named(json.dumps({"Records": [{"s3": {"object": {
        "key": "_nxlog-s3/servers/web01.json"}}}]})) == set()
    for garbage in ("not json", "[]", "{}", '{"Records": [{"s3": {}}]}'):
        assert servers_named(garbage) is None


def test_the_readmes_queue_setup_is_what_s3_and_sqs_take(moto_server):
    """The README's policy and notification documents, as the AWS CLI would send them,
    taken by moto server: an object stored is then notified to the queue."""
    with open(os.path.join(ROOT, "README.md")) as handle:
        readme = handle.read()
    policy = re.search(r"cat > policy.json <<'EOF'\n(.*?)\nEOF", readme, re.S).group(1)
    configuration = json.loads(re.search(r"--notification-configuration '(.*?)'\n", readme,
                                         re.S).group(1))
    bucket = moto_server.new_bucket("my-log-archive")
    sqs = moto_server.sqs()
    url = sqs.create_queue(QueueName="nxlog-s3")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    configuration["QueueConfigurations"][0]["QueueArn"] = arn  # moto's account and region
    client = moto_server.client()
    client.put_bucket_notification_configuration(Bucket=bucket,
                                                 NotificationConfiguration=configuration)
    client.put_object(Bucket=bucket, Key="web01/2026-03-01/10.00.00.1", Body=b"x")
    bodies = [message["Body"] for message in sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", ())]
    assert {"web01"} in [servers_named(body) for body in bodies]


def test_the_news_of_objects_after_read_moved_is_deleted_not_read(queue, settings, build):
    settings(SERVER="*", AFTER_READ="move", MOVE_PREFIX="read/")
    store(queue, "web01", 0)
    reader = build("s3_read")
    assert read_all(reader) == ["web01 0"]
    assert wait_for_no_message(queue, reader) == 0  # 'read/web01/...' named no server
    assert [item["Key"] for item in queue.s3.list_objects_v2(Bucket=queue.bucket)[
        "Contents"] if not item["Key"].startswith("_nxlog-s3/")] == [
        "read/" + key("web01", 0)]
    assert api.logged("WARNING") == []  # 'read/' was never listed as a server's prefix
