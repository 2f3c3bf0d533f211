"""The scripts run as commands, with no NXLog: `python3 s3_write.py check`, and the same for
s3_read.py, against moto server over HTTP, in processes of their own as a user runs them."""

import json
import os
import subprocess
import sys

import pytest

from helpers import BUCKET, ROOT, drain, free_port, script_command, wait_for
from nxlog_stub import api

pytestmark = pytest.mark.http
BOTH = ("s3_write", "s3_read")


@pytest.fixture
def command(moto_server, tmp_path):
    """command('s3_write', 'check', '--flag', value, env={...}): the script run as a command
    in TMP_PATH against moto server, with a bucket of its own (see script_command)."""
    return script_command(moto_server, moto_server.new_bucket("nxlog-commands-%d" %
                                                              free_port()), tmp_path)


def objects_in(command):
    return command.client.list_objects_v2(Bucket=command.bucket).get("Contents", [])


@pytest.mark.parametrize("script", BOTH)
def test_check_passes_with_one_line_and_writes_nothing(command, tmp_path, script):
    status, out, err = command(script, "check")
    assert (status, err) == (0, [])
    [line] = out
    assert line.startswith("%s: NXLog would start: " % script)
    assert "s3://%s/" % command.bucket in line
    assert objects_in(command) == []
    assert os.listdir(tmp_path) == []  # not even the spool's or checkpoint's folder


@pytest.mark.parametrize("script", BOTH)
def test_check_of_a_bad_setting_exits_78_with_the_line_nxlog_would_log(command, script):
    status, out, err = command(script, "check", env={"NXLOG_S3_KEY_TIME": "gmt"})
    assert (status, out) == (78, [])
    assert err == ["ERROR %s: NXLOG_S3_KEY_TIME='gmt' is not valid: use one of: utc, local"
                   % script]


@pytest.mark.parametrize("script", BOTH)
def test_a_flag_overrides_the_environment_and_is_named_when_bad(command, script):
    status, _, err = command(script, "check", "--bucket", command.bucket,
                             env={"NXLOG_S3_BUCKET": "no-such-bucket"})
    assert (status, err) == (0, [])
    status, _, err = command(script, "check", "--key-time", "gmt")
    assert status == 78
    assert err == ["ERROR %s: --key-time='gmt' is not valid: use one of: utc, local" % script]


@pytest.mark.parametrize("script", BOTH)
def test_check_of_a_bucket_that_does_not_exist_exits_78(command, script):
    status, _, err = command(script, "check", "--bucket", "no-such-bucket")
    assert status == 78
    assert err[-1] == "ERROR %s: the bucket no-such-bucket does not exist (BUCKET, or " \
        "NXLOG_S3_BUCKET); this script never creates one" % script


@pytest.mark.parametrize("script", BOTH)
def test_check_without_credentials_warns_with_where_to_put_them_and_exits_1(command, script):
    status, out, err = command(script, "check", env={
        "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull})
    assert status == 1 and len(out) == 1
    assert any("WARNING %s: no AWS credentials found: set AWS_PROFILE" % script in line
               for line in err)


def test_check_while_a_writer_runs_says_so_and_takes_nothing_from_it(command, tmp_path):
    os.makedirs(tmp_path / "s3_write.spool", mode=0o700)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; "
                               "fd = os.open('s3_write.spool/.lock', os.O_RDWR | os.O_CREAT); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); "
                               "time.sleep(60)"], cwd=str(tmp_path), stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        status, out, err = command("s3_write", "check")
    finally:
        holder.kill()
        holder.wait()
    assert (status, err) == (0, [])
    assert out[0].endswith("; a running writer uses the spool now")


def test_check_of_a_broken_checkpoint_logs_what_the_reader_would_and_exits_1(command,
                                                                             tmp_path):
    (tmp_path / "lastkey.log").write_text("{not json")
    status, out, err = command("s3_read", "check")
    assert status == 1 and len(out) == 1
    assert any("ERROR s3_read: checkpoint %s is broken" % (tmp_path / "lastkey.log") in line
               for line in err)


@pytest.mark.parametrize("script", BOTH)
def test_help_lists_every_setting_with_its_default_and_the_exit_statuses(script):
    result = subprocess.run([sys.executable, os.path.join(ROOT, script + ".py"), "check",
                             "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--bucket VALUE" in result.stdout and "(default: 'my-log-archive')" in result.stdout
    assert "--retry-attempts VALUE" in result.stdout and "(default: 5)" in result.stdout
    usage = subprocess.run([sys.executable, os.path.join(ROOT, script + ".py"), "--help"],
                           capture_output=True, text=True, timeout=60).stdout
    assert "Exit status: 0 done; 1 done, with a warning" in " ".join(usage.split())


def writer_event(writer, text):
    assert api.call_write_data(writer.write_data, api.new_event(api.output_module(), {
        "raw_event": text, "EventReceivedTime": "2026-03-01 10:00:05"}))


def test_status_shows_what_waits_and_the_last_upload_error_while_the_writer_runs(
        command, settings, load_then_lose_bucket):
    writer = load_then_lose_bucket("s3_write", "gone-bucket")  # in this process, as NXLog's
    for text in ("one", "two", "three"):
        writer_event(writer, text)
    wait_for(lambda: os.path.exists("s3_write.spool/.last-error.json"), what="an upload error")
    wait_for(lambda: not [name for name in os.listdir("s3_write.spool") if name.endswith(
        ".open")], what="the last batch closed (by write_data, or an uploader thread)")
    status, out, err = command("s3_write", "status", "--json")
    assert (status, err) == (0, [])
    [line] = out
    shown = json.loads(line)
    assert (shown["closed_batches"], shown["events"], shown["in_use"]) == (3, 3, True)
    assert shown["oldest_event"].endswith("Z") and shown["oldest_event_age"] >= 0
    assert shown["last_error"]["code"] == "NoSuchBucket"
    assert shown["last_error"]["time"].endswith("Z")
    assert shown["last_error"]["key"].startswith("web01/2026-03-01/")
    assert shown["last_stored"] is None


def test_status_shows_the_last_keys_stored_once_the_spool_is_empty(s3, command, settings,
                                                                    load):
    writer = load("s3_write")
    for text in ("earlier", "stored"):
        writer_event(writer, text)
        drain(writer)
    earlier, stored = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    status, out, _ = command("s3_write", "status")
    assert status == 0
    assert out[0] == "s3_write: spool %s (in use by a running writer)" % os.path.abspath(
        "s3_write.spool")
    assert out[1] == "  waiting: 0 batches closed, none being filled; 0 events, 0 bytes"
    assert out[2] == "  last stored: %r, its last event 2026-03-01T%s" % (
        stored, stored.split("/")[2][:8].replace(".", ":") + "Z")
    assert out[3] == "  stored lately, the latest last:"
    assert [line.split()[1:] for line in out[4:6]] == [[repr(earlier) + ",", "1", "event"],
                                                       [repr(stored) + ",", "1", "event"]]
    assert all(line.split()[0].endswith("Z") for line in out[4:6])


def test_status_where_no_spool_is_says_where_it_looked_and_exits_1(command, tmp_path):
    status, out, err = command("s3_write", "status")
    assert status == 1
    assert out[0] == "s3_write: spool %s (no such folder)" % (tmp_path / "s3_write.spool")
    assert err == ["WARNING s3_write: no spool at %s: no writer with these settings has run. "
                   "A relative SPOOL_DIR lies in NXLog's SpoolDir: run this there, as the user "
                   "NXLog runs as, or give --spool-dir" % (tmp_path / "s3_write.spool")]
