"""Fixtures: the stub's nxlog module, the scripts as NXLog loads them, and three S3 servers.

- `s3`: moto's in-process mock with the bucket `nxlog-archive` (fast, most tests).
- `moto_server`: moto server over HTTP on 127.0.0.1, a process of its own.
- `ceph`: Ceph's radosgw on 127.0.0.1 (Debian's packages), a production S3 implementation.
All are started and stopped by the tests; no other address is ever used. What tests share
besides fixtures is in helpers.py.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import pytest
from moto import mock_aws

import nxlog_stub  # noqa: F401  (registers the stub as `nxlog`)
import real_nxlog
from helpers import BUCKET, ROOT, Endpoint, free_port, wait_until_answering
from nxlog_stub import api
from nxlog_stub.runner import load_script

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
    before = set(threading.enumerate())
    yield
    api.set_flavour(api.CURRENT)
    _end_threads_left(before)
    api.clear_logs()


SCRIPT_THREADS = ("s3_write", "s3_read", "test background")  # what a test's end must end


def _end_threads_left(before):
    """Waits for the threads of the scripts (and of `background`) that the test started and
    its fixtures have stopped; one still running fails the test that left it, rather than
    logging into the next tests."""
    left = [thread for thread in threading.enumerate() if thread not in before and
            thread.name.startswith(SCRIPT_THREADS)]
    for thread in left:
        thread.join(10)
    running = [thread.name for thread in left if thread.is_alive()]
    if running:
        pytest.fail("threads still running after the test: %s (a script loaded without the "
                    "load or build fixture, or a thread without `background`?)" % running)


@pytest.fixture
def background():
    """background(function, *args): FUNCTION(stop, *args) in a thread of its own; at the end
    of the test, passed or failed, STOP (a threading.Event) is set and the thread joined."""
    stop, started = threading.Event(), []

    def start(function, *args):
        thread = threading.Thread(target=function, args=(stop,) + args,
                                  name="test background", daemon=True)
        thread.start()
        started.append(thread)
        return thread
    yield start
    stop.set()
    for thread in started:
        thread.join(30)


@pytest.fixture
def zone():
    """zone(NAME): this process's local time zone is NAME for the rest of the test."""
    before = os.environ.get("TZ")

    def set_zone(name):
        os.environ["TZ"] = name
        time.tzset()
    yield set_zone
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def no_pyarrow(tmp_path):
    """A folder that, put first on the module path, makes `import pyarrow` fail."""
    folder = tmp_path / "no-pyarrow"
    os.makedirs(folder / "pyarrow")
    (folder / "pyarrow" / "__init__.py").write_text("raise ImportError('no pyarrow here')\n")
    return str(folder)


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
    """load('s3_write') or load('s3_read'): a fresh module instance, as NXLog loads it (from
    PATH, a link to the script say, where given). Instances still running at the end of the
    test are stopped, as their process would end."""
    loaded = []

    def load_instance(name, path=None):
        instance = load_script(str(path or os.path.join(ROOT, name + ".py")),
                               "%s-%d" % (name, len(loaded)))
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
    """Ceph's radosgw on 127.0.0.1: one monitor, one in-memory OSD, started for the session
    (of each pytest-xdist worker), on free ports of its own."""
    if shutil.which("radosgw") is None:
        pytest.skip("Ceph's radosgw is not installed; on Debian or Ubuntu: "
                    "apt-get install -y %s (.ci/run does this)" % CEPH_PACKAGES)
    directory = tempfile.mkdtemp(prefix="nxlog-s3-ceph-")
    env = dict(os.environ, CEPH_DIR=directory, CEPH_MON_V2_PORT=str(free_port()),
               CEPH_MON_V1_PORT=str(free_port()), CEPH_BIND_PORT=str(free_port()))
    port = free_port()
    servers = os.path.join(ROOT, "tests", "servers")
    try:
        started = subprocess.run(["bash", os.path.join(servers, "ceph-rgw-start.sh"),
                                  str(port)], env=env, capture_output=True, text=True,
                                 timeout=300)
        if started.returncode:  # a cluster left running on the same ports, say
            raise RuntimeError("radosgw did not start (exit status %d): %s" % (
                started.returncode, (started.stdout + started.stderr)[-2000:]))
        yield Endpoint("http://127.0.0.1:%d" % port, "test", "test")
    finally:
        subprocess.run(["bash", os.path.join(servers, "ceph-rgw-stop.sh")], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(directory, ignore_errors=True)



@pytest.fixture
def nxlog_process():
    """nxlog_process(conf, log_file, env, pythonpath=...): a real NXLog (tests/real_nxlog.py)
    running CONF, started; stopped at the end of the test if it still runs. Where there is
    none the test is skipped, saying how to build one; under CI=true it fails instead."""
    reason = real_nxlog.missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the tests under a real NXLog: " + reason)
        pytest.skip(reason)
    started = []

    def start(conf, log_file, env, **options):
        started.append(real_nxlog.RealNXLog(conf, log_file, env, **options).start())
        return started[-1]
    yield start
    for each in started:
        if each.alive():
            each.stop()


@pytest.fixture
def build(load):
    """build(script, clock=..., disk=..., client=...): the Writer (or Reader) of SCRIPT, a
    name or a module already loaded, built from the same settings as the instance NXLog
    starts, with those collaborators passed in, and started. The module's own instance is
    stopped first: it holds the spool (or the checkpoint)."""
    built = []

    def make(script, **collaborators):
        module = load(script) if isinstance(script, str) else script
        module.stop()
        kind, kind_settings = (module.Writer, module.WriterSettings) \
            if hasattr(module, "Writer") else (module.Reader, module.ReaderSettings)
        settings = kind_settings.of_script(vars(module), module.__file__)
        built.append(kind(settings, **collaborators).start())
        return built[-1]
    yield make
    for each in built:
        each.stop()


# What the stub's loader prints, in a process of its own, of NXLog's log: "LEVEL message".
LOADER = ("import sys, nxlog_stub; from nxlog_stub import api, runner; "
          "api.echo = lambda level, message: sys.stderr.write('%s %s\\n' % (level, message)); "
          "[runner.load_script(path, 'instance') for path in sys.argv[1:]]")


@pytest.fixture
def start_refused():
    """start_refused('s3_write'): starts the script (or the file at PATH) in a process of its
    own, as NXLog starts it, with this test's settings and working folder. It must refuse
    to start, as NXLog does for a bad directive: exit status EXIT_CONFIG. Returns the lines
    it logged. Endpoint: ENDPOINT, else a closed port on 127.0.0.1 (never anywhere else).
    PYTHONPATH: folders searched for modules before the project's. FIRST: scripts (paths)
    started before it in the same process, as NXLog starts its instances one by one."""
    def start(name, path=None, endpoint=None, pythonpath=(), first=()):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(list(pythonpath) + [ROOT]),
                   AWS_ENDPOINT_URL=endpoint or "http://127.0.0.1:%d" % free_port())
        result = subprocess.run([sys.executable, "-c", LOADER] + [str(each) for each in first]
                                + [path or os.path.join(ROOT, name + ".py")],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 78, (result.returncode, result.stderr)
        return result.stderr.splitlines()
    return start
