"""What the tests share besides fixtures: waiting, objects in a bucket, reading as NXLog
polls, servers on 127.0.0.1, and the scripts' objects rebuilt with other collaborators."""

import errno
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zlib

import boto3

from nxlog_stub import api

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "nxlog-archive"  # not "logs": moto routes logs.*.amazonaws.com to CloudWatch Logs
# A key of the scheme: its second (SERVER/YYYY-MM-DD/HH.MM.SS), its counter, its suffix if any.
KEY = re.compile(r"^([^/]+/[0-9]{4}-[0-9]{2}-[0-9]{2}/[0-9]{2}\.[0-9]{2}\.[0-9]{2})\.([0-9]+)"
                 r"(\.[a-z.]+)?$")


def version():
    """The release, as nxlog_s3/common/runtime.py (and so each script) says it."""
    with open(os.path.join(ROOT, "nxlog_s3", "common", "runtime.py")) as handle:
        return next(line.split('"')[1] for line in handle if line.startswith("VERSION = "))


def instance_link(folder, script, instance):
    """FOLDER/SCRIPT_INSTANCE.py, a link to the project's SCRIPT, as a user makes an
    instance of it; its path."""
    path = folder / ("%s_%s.py" % (script, instance))
    path.symlink_to(os.path.join(ROOT, script + ".py"))
    return path


def nxlog_text(text):
    """TEXT as the reader gives it to NXLog, which cuts text at a NUL and dies on a field
    name holding a NUL or a lone surrogate: each of those as a visible \\uXXXX escape."""
    return re.sub("[\x00\ud800-\udfff]", lambda match: "\\u%04x" % ord(match.group()), text)


def as_nxlog_takes(fields):
    """FIELDS as the reader posts them: names and text made safe (nxlog_text), a name that
    would then be another's taking ~2 (~3...), integers beyond 64 bits as decimal text."""
    taken = {}
    for name, value in fields.items():
        safe = base = nxlog_text(name)
        number = 1
        while safe != name and (safe in fields or safe in taken):
            number += 1
            safe = "%s~%d" % (base, number)
        if isinstance(value, str):
            value = nxlog_text(value)
        elif type(value) is int and not -2 ** 63 <= value < 2 ** 63:
            value = str(value)
        taken[safe] = value
    return taken


def key_second(key):
    return KEY.match(key).group(1)


def key_counter(key):
    return int(KEY.match(key).group(2))


def instance_of(script):
    """The Writer or Reader of SCRIPT, a loaded module or one of them already."""
    return getattr(script, "instance", script)


def filling_disk(module, fails="write_atomically"):
    """A Disk of the script MODULE that, while its `full` is set, refuses FAILS (one of
    write_atomically, fsync, write) as a full disk does."""
    class Filling(module.Disk):
        full = False

        def write_atomically(self, path, data, sync=True, mode=None):
            self.refuse("write_atomically")
            module.Disk.write_atomically(self, path, data, sync, mode)

        def fsync(self, fd):
            self.refuse("fsync")
            module.Disk.fsync(fd)

        def write(self, fd, data):
            self.refuse("write")
            return module.Disk.write(fd, data)

        def refuse(self, call):
            if self.full and call == fails:
                raise OSError(errno.ENOSPC, "No space left on device")
    return Filling()


class RecordingClock(object):
    """A clock that moves only when the scripts sleep on it: each sleep is recorded and
    returns at once, having moved the clock on. After LIMIT sleeps, a sleep waits for its
    interrupt (the writer's stop), so that a test reads the record of a run held still."""

    def __init__(self, limit):
        self.limit, self.slept = limit, []
        self.held = threading.Event()  # set once a sleep past LIMIT holds its thread
        self.start = self.now = time.monotonic()
        self.wall = time.time()

    def monotonic(self):
        return self.now

    def time(self):
        return self.wall + self.now - self.start

    def sleep(self, seconds, interrupt=None):
        if len(self.slept) >= self.limit:
            self.held.set()
            (interrupt.wait if interrupt is not None else time.sleep)(3600)
            return
        self.slept.append(seconds)
        self.now += seconds
        time.sleep(0.001)  # a turn for the other threads, as a real sleep gives


class FastClock(object):
    """A clock for the scripts that runs RATE times as fast as the real one: a minute of
    outage and back-off passes in a few real seconds, and every wait in the scripts, real
    or on this clock, still ends. Passed in as botocore's retry handler is given its sleep."""

    def __init__(self, rate):
        self.rate = rate
        self.real_start, self.wall_start = time.monotonic(), time.time()

    def elapsed(self):
        return (time.monotonic() - self.real_start) * self.rate

    def monotonic(self):
        return self.real_start + self.elapsed()

    def time(self):
        return self.wall_start + self.elapsed()

    def sleep(self, seconds, interrupt=None):
        (interrupt.wait if interrupt is not None else time.sleep)(seconds / self.rate)


class SteppedClock(object):
    """The real clock, put forward by what a test stepped it on: a wait the scripts measure
    (POLL_INTERVAL between two tries of an object) passes at once, and the test waits for
    no wall-clock time. Its sleeps are real."""

    def __init__(self):
        self.offset = 0.0

    def step(self, seconds):
        self.offset += seconds

    def time(self):
        return time.time() + self.offset

    def monotonic(self):
        return time.monotonic() + self.offset

    def sleep(self, seconds, interrupt=None):
        (interrupt.wait if interrupt is not None else time.sleep)(seconds)


def drain(writer, seconds=15):
    """Waits until WRITER's spool is empty: every event it took is in S3."""
    spool = instance_of(writer).spool
    deadline = time.monotonic() + seconds
    while spool.pending():
        if time.monotonic() > deadline:
            raise AssertionError("%d events still in the spool after %s s; logged: %s"
                                 % (spool.pending(), seconds, api.LOGS))
        time.sleep(0.01)


def wait_for(condition, seconds=15, what="the condition"):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("%s did not happen within %s s; logged: %s"
                                 % (what, seconds, api.LOGS))
        time.sleep(0.01)


def all_objects(client, prefix=""):
    """{key: object} of everything under PREFIX, with the body read."""
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", ()):
            objects[item["Key"]] = client.get_object(Bucket=BUCKET, Key=item["Key"])
            objects[item["Key"]]["Data"] = objects[item["Key"]]["Body"].read()
    return objects


# ---- Objects and reading, as the reader tests use them ----

JSON_LINES = {"nxlog-s3-format": "jsonl", "nxlog-s3-compression": "gzip"}


def batch(*texts):
    return gzip.compress(b"".join(json.dumps({"raw_event": text}).encode() + b"\n"
                                  for text in texts))


def put(client, key, body, metadata=None, bucket=BUCKET, **headers):
    if isinstance(body, str):
        body = body.encode()
    client.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata or {}, **headers)


def poll(reader, module=None):
    """One read_data call as NXLog makes it: (delay of the next call, raw_events posted)."""
    delay, events = api.call_read_data(reader.read_data, module or api.input_module("s3"))
    return delay, [event.get_field("raw_event") for event in events]


def read_all(reader, module=None):
    """Polls until the reader has caught up; every raw_event posted, in order."""
    posted = []
    for _ in range(1000):
        delay, events = poll(reader, module)
        assert delay is not None, "the input stopped: %s" % api.logged("ERROR")
        posted += events
        if delay == instance_of(reader).settings.POLL_INTERVAL:
            return posted
    raise AssertionError("the reader never caught up")


def restarted(reader, load):
    """READER's process ends (its checkpoint let go) and a new reader starts."""
    reader.stop()
    return load("s3_read")


def checkpoint(tmp_path):
    return json.loads((tmp_path / "lastkey.log").read_text())


def gzip_bomb(size):
    """SIZE zero bytes with no newline, gzip-compressed: a thousand times smaller than what
    they unpack to."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(min(size, 1 << 20))
    return b"".join([compressor.compress(chunk) for _ in range(size // len(chunk))] +
                    [compressor.flush()])


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answering(url, process=None, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError("the server at %s exited with %s" % (url, process.returncode))
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error status: it answers
                return
            time.sleep(0.1)
    raise RuntimeError("nothing answered at %s within %s s" % (url, seconds))


class Endpoint(object):
    """An S3 endpoint on 127.0.0.1 and the environment that points boto3 at it."""

    def __init__(self, url, access_key, secret_key):
        self.url = url  # http://127.0.0.1:PORT
        self.env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": access_key,
                    "AWS_SECRET_ACCESS_KEY": secret_key, "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self):
        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.env[
            "AWS_ACCESS_KEY_ID"], aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1")

    def sqs(self):
        """An SQS client of the same endpoint (moto server serves both)."""
        return boto3.client("sqs", endpoint_url=self.url, aws_access_key_id=self.env[
            "AWS_ACCESS_KEY_ID"], aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1")

    def new_bucket(self, prefix):
        """A new, empty bucket, named PREFIX and a random suffix: S3 in us-east-1 (and moto)
        answers a create of a bucket one owns already with success, and a name that came
        back (a port number, a counter of another process) would hand a test another test's
        objects."""
        name = "%s-%s" % (prefix, uuid.uuid4().hex[:12])
        self.client().create_bucket(Bucket=name)
        return name


class NotificationQueue(object):
    """A new queue of ENDPOINT's (moto server's), that BUCKET's object-created
    notifications go to, as S3 sends them."""

    def __init__(self, endpoint, bucket):
        self.sqs, self.s3, self.bucket = endpoint.sqs(), endpoint.client(), bucket
        self.url = self.sqs.create_queue(QueueName="nxlog-%s" % uuid.uuid4().hex[:12])[
            "QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=[
            "QueueArn"])["Attributes"]["QueueArn"]
        self.notify(True)

    def notify(self, on):
        self.s3.put_bucket_notification_configuration(
            Bucket=self.bucket, NotificationConfiguration={"QueueConfigurations": [
                {"QueueArn": self.arn, "Events": ["s3:ObjectCreated:*"]}]} if on else {})

    def messages_left(self):
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])[
            "Attributes"]
        return sum(int(value) for value in attributes.values())

    def send(self, key):
        """A notification of KEY, as S3 sends it."""
        self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps({"Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
             "s3": {"bucket": {"name": self.bucket}, "object": {"key": key}}}]}))


def run_conf(conf, endpoint, defines, settings, idle=1.5, legacy=False, cwd=None,
             python=sys.executable):
    """Runs CONF through `python -m nxlog_stub` in a process of its own, as a user would."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("NXLOG_S3_", "AWS_"))}
    env.update(endpoint.env)
    env.update({"NXLOG_S3_" + name: str(value) for name, value in settings.items()})
    env["PYTHONPATH"] = ROOT
    command = [python, "-m", "nxlog_stub", os.path.join(ROOT, "conf", conf),
               "--idle", str(idle)]
    for name, value in dict({"ROOT": str(cwd or os.getcwd())}, **defines).items():
        command += ["--define", "%s=%s" % (name, value)]
    if legacy:
        command.append("--legacy-api")
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def script_command(endpoint, bucket, cwd):
    """run('s3_read', 'audit', '--json', env={...}, stderr=...): (exit status, stdout lines,
    stderr lines) of the script (or the file at a path: a link, say) run as a command in
    CWD, as a user runs it, pointed at ENDPOINT and BUCKET (and SERVER web01), the settings
    of ENV on top. STDERR: a file
    descriptor to give it instead of a pipe (a terminal, say); its lines are then []."""
    def run(script, *arguments, env=None, stderr=subprocess.PIPE):
        environ = {name: value for name, value in os.environ.items()
                   if not name.startswith(("NXLOG_S3_", "AWS_"))}
        environ.update(endpoint.env, NXLOG_S3_BUCKET=bucket, NXLOG_S3_SERVER="web01")
        environ.update(env or {})
        path = script if os.sep in str(script) else os.path.join(ROOT, script + ".py")
        result = subprocess.run([sys.executable, str(path)] + list(arguments), env=environ,
                                cwd=str(cwd), stdout=subprocess.PIPE, stderr=stderr,
                                text=True, timeout=120)
        return result.returncode, result.stdout.splitlines(), (result.stderr or "").splitlines()
    run.bucket, run.client = bucket, endpoint.client()
    return run


HOLD_LOCK = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
             "fcntl.flock(fd, fcntl.LOCK_EX); "
             "os.write(fd, ('%s pid %d\\n' % (sys.argv[2], os.getpid())).encode()); "
             "print('held', flush=True); sys.stdin.read()")


class LockInAnotherProcess(object):
    """A process of its own that holds the lock PATH as SCRIPT's start takes it, until the
    `with` block ends: what a reader or writer in another NXLog does."""

    def __init__(self, path, script):
        self.process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), script],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout.readline() == b"held\n"
        self.pid = self.process.pid

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.process.stdin.close()
        self.process.wait(timeout=30)


def locked_elsewhere(path):
    """Whether a process holds the lock PATH, as another process finds it."""
    probe = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
             "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)")
    return subprocess.run([sys.executable, "-c", probe, str(path)],
                          capture_output=True).returncode != 0
