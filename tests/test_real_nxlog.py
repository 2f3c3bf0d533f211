"""Both conf/ files as they are (their defines fitted), and s3_write.py and s3_read.py, under
a real NXLog CE 3.1.15 (tests/real_nxlog.py) against moto server on 127.0.0.1: a round trip,
a start refused for a bad setting, and a stop while the spool is full that loses nothing."""

import itertools
import os

import pytest

from helpers import ROOT
from real_nxlog import fitted_conf

_numbers = itertools.count(1)


@pytest.fixture
def bucket(moto_server):
    return moto_server.new_bucket("nxlog-real-%d-%d" % (os.getpid(), next(_numbers)))


def keys_in(endpoint, bucket):
    pages = endpoint.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", ())]


def lines_of(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        return []


def nxlog_env(endpoint_env, **settings):
    return dict(endpoint_env, **{"NXLOG_S3_" + name: str(value)
                                 for name, value in settings.items()})


def start_conf(nxlog_process, name, folder, env, **defines):
    """conf/NAME under a real NXLog, its ROOT (SpoolDir, log) in FOLDER, scripts from the
    project's top."""
    os.makedirs(str(folder), exist_ok=True)
    conf = fitted_conf(name, folder, ROOT=folder, SCRIPTDIR=ROOT, **defines)
    return nxlog_process(conf, os.path.join(str(folder), "nxlog.log"), env)


def test_both_conf_files_move_every_line_once_and_in_order(moto_server, bucket, tmp_path,
                                                            nxlog_process):
    lines = ["%03d GET /index.html 200 caf\u00e9" % number for number in range(120)]
    (tmp_path / "app.log").write_text("".join(line + "\n" for line in lines))
    env = nxlog_env(moto_server.env, BUCKET=bucket, SERVER="web01", POLL_INTERVAL=0.2)
    writer = start_conf(nxlog_process, "s3-write.conf", tmp_path / "write", env,
                        LOGFILE=tmp_path / "app.log")
    writer.wait_for(lambda: len(keys_in(moto_server, bucket)) == len(lines),
                    what="an object per line")
    assert writer.stop() == 0
    reader = start_conf(nxlog_process, "s3-read.conf", tmp_path / "read", env,
                        OUTFILE=tmp_path / "out.log")
    reader.wait_for(lambda: len(lines_of(tmp_path / "out.log")) >= len(lines),
                    what="every line read back")
    assert reader.stop() == 0
    assert lines_of(tmp_path / "out.log") == lines
    assert " ERROR " not in writer.log() + reader.log()


@pytest.mark.parametrize("conf, setting", [("s3-write.conf", {"BATCH_EVENTS": "0"}),
                                           ("s3-read.conf", {"START_AT": "yesterday"})])
def test_a_bad_setting_keeps_nxlog_from_starting(moto_server, bucket, tmp_path, nxlog_process,
                                                 conf, setting):
    env = nxlog_env(moto_server.env, BUCKET=bucket, SERVER="web01", **setting)
    nxlog = start_conf(nxlog_process, conf, tmp_path, env, LOGFILE=tmp_path / "app.log") \
        if conf == "s3-write.conf" else \
        start_conf(nxlog_process, conf, tmp_path, env, OUTFILE=tmp_path / "out.log")
    assert nxlog.exited() == 78  # EX_CONFIG: NXLog refuses to start, as for a bad directive
    name = next(iter(setting))
    assert any(" ERROR s3_" in line and name in line for line in nxlog.log().splitlines()), \
        nxlog.log()


def test_a_stop_while_the_spool_is_full_is_prompt_and_loses_nothing(moto_server, bucket,
                                                                    tmp_path, nxlog_process):
    lines = ["line %03d %s" % (number, "x" * 60) for number in range(60)]
    (tmp_path / "app.log").write_text("".join(line + "\n" for line in lines))
    settings = dict(BUCKET=bucket, SERVER="web01", SPOOL_MAX_BYTES=1000)
    down = dict(moto_server.env, AWS_ENDPOINT_URL="http://127.0.0.1:9")  # nothing listens
    writer = start_conf(nxlog_process, "s3-write.conf", tmp_path / "write",
                        nxlog_env(down, **settings), LOGFILE=tmp_path / "app.log")
    writer.wait_for(lambda: "is full (SPOOL_MAX_BYTES=1000" in writer.log(), what="a full spool")
    assert writer.stop(timeout=15) == 0
    again = start_conf(nxlog_process, "s3-write.conf", tmp_path / "write",
                       nxlog_env(moto_server.env, **settings), LOGFILE=tmp_path / "app.log")
    again.wait_for(lambda: len(keys_in(moto_server, bucket)) >= len(lines),
                   what="every line stored after the restart")
    assert again.stop() == 0
    client = moto_server.client()
    stored = sorted(client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
                    for key in keys_in(moto_server, bucket))
    assert stored == lines
