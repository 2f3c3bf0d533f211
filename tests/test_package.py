"""One command installs it: `python -m build` makes the wheel and the sdist; the wheel is the
two scripts alone (no test code), and `pip install --target DIR` of either, with the system
Python that NXLog embeds, leaves s3_write.py, s3_read.py and boto3 in DIR. Then
`PythonCode DIR/s3_write.py` and PYTHONPATH=DIR is the whole install, shown under a real
NXLog, with the release in the first log line and in each object's metadata."""

import os
import subprocess
import sys
import zipfile

import pytest

from helpers import ROOT, version
from real_nxlog import SYSTEM_PATH, fitted_conf

SYSTEM_PYTHON = os.environ.get("NXLOG_SYSTEM_PYTHON", "/usr/bin/python3")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The wheel and the sdist `python -m build` makes of the project, as (wheel, sdist)."""
    folder = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(folder), ROOT], check=True,
                   capture_output=True, timeout=600)
    built = sorted(os.listdir(folder))
    wheel = next(name for name in built if name.endswith(".whl"))
    sdist = next(name for name in built if name.endswith(".tar.gz"))
    return folder / wheel, folder / sdist


def pip_install_target(package, target, *options):
    """`pip install --target TARGET PACKAGE` with the system Python, as the README says."""
    result = subprocess.run([SYSTEM_PYTHON, "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", "--target", str(target),
                             str(package)] + list(options), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr


def test_the_wheel_is_the_two_scripts_and_names_boto3(dist):
    wheel, sdist = dist
    assert wheel.name == "nxlog_s3-%s-py3-none-any.whl" % version()
    assert sdist.name == "nxlog_s3-%s.tar.gz" % version()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read("nxlog_s3-%s.dist-info/METADATA" % version()).decode()
    assert sorted(name for name in names if ".dist-info/" not in name) == [
        "s3_read.py", "s3_write.py"]
    assert "Requires-Dist: boto3>=1.35.16" in metadata.splitlines()


def test_the_sdist_installs_the_same_two_scripts(dist, tmp_path):
    pip_install_target(dist[1], tmp_path / "target", "--no-deps")
    assert sorted(name for name in os.listdir(tmp_path / "target")  # pip compiles them too
                  if not name.endswith(".dist-info") and name != "__pycache__") == [
        "s3_read.py", "s3_write.py"]


@pytest.mark.http
def test_pip_install_target_is_the_whole_install_under_a_real_nxlog(dist, moto_server,
                                                                     nxlog_process, tmp_path):
    target = tmp_path / "opt-nxlog-s3"
    pip_install_target(dist[0], target)
    assert {"s3_write.py", "s3_read.py", "boto3", "botocore"} <= set(os.listdir(target))
    assert not {"nxlog_stub", "nxlog_s3", "tests"} & set(os.listdir(target))
    shown = subprocess.run([SYSTEM_PYTHON, str(target / "s3_read.py"), "--version"],
                           env={"PATH": SYSTEM_PATH, "PYTHONPATH": str(target)},
                           capture_output=True, text=True, timeout=60)
    assert (shown.returncode, shown.stdout) == (0, "s3_read.py (nxlog-s3) %s\n" % version())

    bucket = moto_server.new_bucket("nxlog-package-%d" % os.getpid())
    client = moto_server.client()
    lines = ["installed by pip %d" % number for number in range(20)]
    (tmp_path / "app.log").write_text("".join(line + "\n" for line in lines))
    env = dict(moto_server.env, NXLOG_S3_BUCKET=bucket, NXLOG_S3_SERVER="web01",
               NXLOG_S3_BATCH_EVENTS="5", NXLOG_S3_BATCH_AGE="0.5",
               NXLOG_S3_POLL_INTERVAL="0.2")

    def start(conf, **defines):
        folder = tmp_path / conf.split(".")[0]
        folder.mkdir()
        path = fitted_conf(conf, folder, ROOT=folder, SCRIPTDIR=target, **defines)
        return nxlog_process(path, folder / "nxlog.log", env, pythonpath=target)

    def events_stored():
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return sum(int(client.head_object(Bucket=bucket, Key=item["Key"])["Metadata"][
            "nxlog-s3-events"]) for item in listed)

    writer = start("s3-write.conf", LOGFILE=tmp_path / "app.log")
    writer.wait_for(lambda: events_stored() == len(lines), what="every line stored")
    assert writer.stop() == 0
    reader = start("s3-read.conf", OUTFILE=tmp_path / "out.log")
    reader.wait_for(lambda: out_lines(tmp_path / "out.log") == lines, what="every line back")
    assert reader.stop() == 0
    first = client.list_objects_v2(Bucket=bucket)["Contents"][0]["Key"]
    assert client.head_object(Bucket=bucket, Key=first)["Metadata"][
        "nxlog-s3-release"] == version()
    for nxlog, script in ((writer, "s3_write"), (reader, "s3_read")):
        assert "INFO %s: nxlog-s3 %s started: " % (script, version()) in nxlog.log()
        assert " ERROR " not in nxlog.log(), nxlog.log()


def out_lines(path):
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []
