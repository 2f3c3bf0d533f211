"""Fixtures: the stub's nxlog module, the scripts as NXLog loads them, and three S3 servers.

- `s3`: moto's in-process mock with the bucket `nxlog-archive` (fast, most tests).
- `moto_server`: moto server over HTTP on 127.0.0.1, a process of its own.
- `ceph`: Ceph's radosgw on 127.0.0.1 (Debian's packages), a production S3 implementation.
All are started and stopped by the tests; no other address is ever used.
"""

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

import boto3
import pytest
from moto import mock_aws

import nxlog_stub  # noqa: F401  (registers the stub as `nxlog`)
from nxlog_stub import api
from nxlog_stub.runner import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "nxlog-archive"  # not "logs": moto routes logs.*.amazonaws.com to CloudWatch Logs
CEPH_PACKAGES = "radosgw ceph-mon ceph-osd"


def pytest_addoption(parser):
    group = parser.getgroup("nxlog-s3")
    group.addoption("--soak", action="store_true",
                    help="run the reliability scenarios longer: a million events, 100 kills")
    group.addoption("--results", metavar="FILE",
                    help="append each reliability scenario's figures to FILE (JSON lines)")


@pytest.fixture
def soak(request):
    return request.config.getoption("--soak")


@pytest.fixture
def report(request):
    """report(scenario, side, **figures): one row of docs/RELIABILITY.md, appended to the
    --results file when one is given."""
    path = request.config.getoption("--results")

    def record(scenario, side, **figures):
        if path:
            row = dict(scenario=scenario, side=side, test=request.node.name, **figures)
            with open(path, "a") as handle:
                handle.write(json.dumps(row) + "\n")
    return record


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True, scope="session")
def only_127_0_0_1():
    """The tests may reach 127.0.0.1 and nothing else: a request that would leave the
    machine (a forgotten endpoint, an instance-role lookup) fails at once, loudly."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def check(host):
        if host not in LOCAL_HOSTS:
            raise OSError("the tests may reach 127.0.0.1 only, not %r" % (host,))

    def getaddrinfo(host, *args, **kwargs):
        check(host.decode() if isinstance(host, bytes) else host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address[0])
        return real_connect(self, address)
    socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
    yield
    socket.getaddrinfo, socket.socket.connect = real_getaddrinfo, real_connect


@pytest.fixture(autouse=True)
def clean_nxlog(monkeypatch, tmp_path):
    """Every test starts with no captured logs, the current API, no NXLOG_S3_* settings,
    fake credentials, and its own working directory (NXLog's SpoolDir)."""
    api.clear_logs()
    api.set_flavour(api.CURRENT)
    for name in list(os.environ):
        if name.startswith(("NXLOG_S3_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.chdir(tmp_path)
    yield
    api.set_flavour(api.CURRENT)


@pytest.fixture
def s3():
    """moto's in-process S3 with an empty bucket `nxlog-archive`."""
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def settings(monkeypatch):
    """settings(NAME=value, ...): sets NXLOG_S3_NAME for the scripts loaded after it."""
    def apply(**values):
        for name, value in values.items():
            monkeypatch.setenv("NXLOG_S3_" + name, str(value))
    apply(BUCKET=BUCKET, SERVER="web01")
    return apply


@pytest.fixture
def load():
    """load('s3_write') or load('s3_read'): a fresh module instance, as NXLog loads it.
    Instances still running at the end of the test are stopped, as their process would end."""
    loaded = []

    def load_instance(name):
        instance = load_script(os.path.join(ROOT, name + ".py"), "%s-%d" % (name, len(loaded)))
        loaded.append(instance)
        return instance
    yield load_instance
    for instance in loaded:
        instance.stop()


@pytest.fixture
def load_then_lose_bucket(s3, settings, load):
    """load_then_lose_bucket('s3_write', 'name'): loads the script while the bucket NAME
    exists (its start-up check passes), then deletes the bucket, as if someone did while
    NXLog runs: S3 answers NoSuchBucket until the bucket is made again."""
    def load_instance(name, bucket):
        settings(BUCKET=bucket)
        s3.create_bucket(Bucket=bucket)
        instance = load(name)
        s3.delete_bucket(Bucket=bucket)
        return instance
    return load_instance


def drain(writer, seconds=15):
    """Waits until WRITER's spool is empty: every event it took is in S3."""
    deadline = time.monotonic() + seconds
    while writer._spool.pending():
        if time.monotonic() > deadline:
            raise AssertionError("%d events still in the spool after %s s; logged: %s"
                                 % (writer._spool.pending(), seconds, api.LOGS))
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
        if delay == reader.POLL_INTERVAL:
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

    def new_bucket(self, name):
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_server():
    """moto server over HTTP on 127.0.0.1, in a process of its own."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        url = "http://127.0.0.1:%d" % port
        wait_until_answering(url + "/moto-api/", process)
        yield Endpoint(url, "testing", "testing")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


@pytest.fixture(scope="session")
def ceph():
    """Ceph's radosgw on 127.0.0.1: one monitor, one in-memory OSD, started for the session."""
    if shutil.which("radosgw") is None:
        pytest.skip("Ceph's radosgw is not installed; on Debian or Ubuntu: "
                    "apt-get install -y %s (.ci/run does this)" % CEPH_PACKAGES)
    directory = tempfile.mkdtemp(prefix="nxlog-s3-ceph-")
    env = dict(os.environ, CEPH_DIR=directory)
    port = free_port()
    servers = os.path.join(ROOT, "tests", "servers")
    try:
        subprocess.run(["bash", os.path.join(servers, "ceph-rgw-start.sh"), str(port)], env=env,
                       check=True, stdout=subprocess.DEVNULL, timeout=300)
        yield Endpoint("http://127.0.0.1:%d" % port, "test", "test")
    finally:
        subprocess.run(["bash", os.path.join(servers, "ceph-rgw-stop.sh")], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


def run_conf(conf, endpoint, defines, settings, idle=1.5, legacy=False, cwd=None,
             python=sys.executable):
    """Runs CONF through `python -m nxlog_stub` in a process of its own, as a user would."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("NXLOG_S3_", "AWS_"))}
    env.update(endpoint.env)
    env.update({"NXLOG_S3_" + name: str(value) for name, value in settings.items()})
    env["PYTHONPATH"] = ROOT
    command = [python, "-m", "nxlog_stub", os.path.join(ROOT, "conf", conf),
               "--idle", str(idle), "--cache-dir", str(cwd or os.getcwd())]
    for name, value in defines.items():
        command += ["--define", "%s=%s" % (name, value)]
    if legacy:
        command.append("--legacy-api")
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
