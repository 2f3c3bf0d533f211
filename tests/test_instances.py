"""One copy serves several instances: a link named s3_write_web.py (or s3_read_web.py) is the
instance web, whose settings come from NXLOG_S3_WEB_<NAME> first, then NXLOG_S3_<NAME>, then
the top of the file, and whose spool or checkpoint is its own. Instances that would share a
spool, a checkpoint or a metrics file refuse to start, with one line naming both."""

import json
import os

import pytest

from helpers import (
    BUCKET,
    ROOT,
    drain,
    instance_link,
    read_all,
    run_conf,
    script_command,
    version,
)
from nxlog_stub import api

BOTH = ("s3_write", "s3_read")


@pytest.mark.parametrize("script", BOTH)
def test_an_instance_takes_its_own_variable_first_then_the_common_one_then_the_file(
        s3, settings, load, monkeypatch, tmp_path, script):
    settings(RETRY_ATTEMPTS=7, CONNECT_TIMEOUT=3)
    monkeypatch.setenv("NXLOG_S3_WEB_RETRY_ATTEMPTS", "9")
    web = load(script, instance_link(tmp_path, script, "web")).instance.settings
    assert (web.INSTANCE, web.RETRY_ATTEMPTS, web.CONNECT_TIMEOUT, web.READ_TIMEOUT) == (
        "web", 9, 3, 60)
    plain = load(script).instance.settings
    assert (plain.INSTANCE, plain.RETRY_ATTEMPTS) == ("", 7)  # NXLOG_S3_WEB_* is web's alone


def test_each_instance_has_a_spool_and_a_checkpoint_of_its_own_by_default(s3, settings, load,
                                                                          tmp_path):
    writers, readers = ([load(script, instance_link(tmp_path, script, name))
                         for name in ("web", "auth")] for script in ("s3_write", "s3_read"))
    assert [writer.instance.settings.SPOOL_DIR for writer in writers] == [
        "s3_write_web.spool", "s3_write_auth.spool"]
    assert [reader.instance.settings.CHECKPOINT for reader in readers] == [
        "lastkey_web.log", "lastkey_auth.log"]
    assert load("s3_write").instance.settings.SPOOL_DIR == "s3_write.spool"
    assert load("s3_read").instance.settings.CHECKPOINT == "lastkey.log"


def test_two_writer_and_two_reader_instances_each_keep_to_their_own_server(
        s3, settings, load, monkeypatch, tmp_path):
    monkeypatch.setenv("NXLOG_S3_WEB_SERVER", "web01")
    monkeypatch.setenv("NXLOG_S3_AUTH_SERVER", "auth01")
    for name in ("web", "auth"):
        writer = load("s3_write", instance_link(tmp_path, "s3_write", name))
        assert api.call_write_data(writer.write_data, api.new_event(api.output_module(), {
            "raw_event": "%s event" % name, "EventReceivedTime": "2026-03-01 10:00:05"}))
        drain(writer)
    assert sorted(item["Key"].split("/")[0]
                  for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == [
        "auth01", "web01"]
    for name in ("web", "auth"):
        reader = load("s3_read", instance_link(tmp_path, "s3_read", name))
        assert read_all(reader) == ["%s event" % name]


SHARED = {  # a setting two instances share: (first, then, the line that refuses the second)
    "SPOOL_DIR": (("s3_write", "web"), ("s3_write", "auth"),
                  "ERROR s3_write_auth: the spool %s is in use by s3_write_web in this NXLog: "
                  "give each <Output> its own SPOOL_DIR (an instance's: NXLOG_S3_<INSTANCE>_"
                  "SPOOL_DIR)"),
    "CHECKPOINT": (("s3_read", "web"), ("s3_read", "auth"),
                   "ERROR s3_read_auth: another reader uses the checkpoint %s: s3_read_web in "
                   "this NXLog; give each reader its own CHECKPOINT (an instance's: "
                   "NXLOG_S3_<INSTANCE>_CHECKPOINT)"),
    "METRICS_FILE": (("s3_write", ""), ("s3_read", ""),
                     "ERROR s3_read: METRICS_FILE=%s is written by s3_write in this NXLog: give "
                     "each instance its own METRICS_FILE (an instance's: NXLOG_S3_<INSTANCE>_"
                     "METRICS_FILE)")}


@pytest.mark.parametrize("setting", sorted(SHARED))
def test_two_instances_of_one_nxlog_sharing_a_file_refuse_to_start_naming_both(
        settings, start_refused, tmp_path, setting):
    path = tmp_path / ("shared.prom" if setting == "METRICS_FILE" else "shared")
    settings(**{setting: path})
    first, then, line = SHARED[setting]
    scripts = [instance_link(tmp_path, script, name) if name else
               os.path.join(ROOT, script + ".py") for script, name in (first, then)]
    assert start_refused(then[0], str(scripts[1]), first=[scripts[0]])[-1] == line % path


def test_a_file_name_that_names_an_unusable_instance_is_refused(settings, start_refused,
                                                                tmp_path):
    path = tmp_path / "s3_write_web-logs.py"
    path.symlink_to(os.path.join(ROOT, "s3_write.py"))
    assert start_refused("s3_write", str(path)) == [
        "ERROR s3_write_web-logs: the file name %s names an instance, 'web-logs', that is not "
        "usable in the variables NXLOG_S3_<INSTANCE>_<NAME>: use letters and digits "
        "(s3_write_web.py, s3_read_auth2.py)" % path]


@pytest.mark.http
def test_check_status_and_the_metrics_name_the_instance(moto_server, tmp_path):
    bucket = moto_server.new_bucket("nxlog-instances-check")
    command = script_command(moto_server, bucket, tmp_path)
    writer, reader = (instance_link(tmp_path, script, "web") for script in BOTH)
    status, out, _ = command(str(writer), "check")
    assert (status, out) == (0, [
        "s3_write_web: NXLog would start: instance web (NXLOG_S3_WEB_<NAME> first), events go "
        "to s3://%s/web01/ (one object per event, raw, compression none), spool %s"
        % (bucket, tmp_path / "s3_write_web.spool")])
    status, out, _ = command(str(writer), "status", "--json")
    assert (status, json.loads(out[0])["script"]) == (1, "s3_write_web")  # no spool yet
    status, out, _ = command(str(reader), "status")
    assert out[0] == "s3_read_web: checkpoint %s (no such file)" % (tmp_path / "lastkey_web.log")
    status, out, _ = command(str(writer), "--version")
    assert (status, out) == (0, ["s3_write_web.py (nxlog-s3) %s" % version()])


def test_the_metrics_of_an_instance_carry_its_name(s3, settings, load, tmp_path):
    settings(METRICS_FILE=tmp_path / "web.prom")
    load("s3_write", instance_link(tmp_path, "s3_write", "web")).stop()
    text = (tmp_path / "web.prom").read_text()
    assert 'nxlog_s3_writer_events_total{bucket="%s",script="s3_write_web",server="web01"} 0' \
        % BUCKET in text


@pytest.mark.http
def test_the_conf_of_two_instances_ships_each_file_under_its_own_server(moto_server, tmp_path):
    bucket = moto_server.new_bucket("nxlog-instances-conf")
    for name in ("web", "auth"):
        instance_link(tmp_path, "s3_write", name)
        (tmp_path / ("%s.log" % name)).write_text("".join(
            "%s line %d\n" % (name, number) for number in range(5)))
    for _ in range(5):  # a run that stops with events in a spool stores them at the next
        ran = run_conf("s3-write-instances.conf", moto_server, {
            "SCRIPTDIR": tmp_path, "WEBLOG": tmp_path / "web.log",
            "AUTHLOG": tmp_path / "auth.log"},
            {"BUCKET": bucket, "WEB_SERVER": "web01", "AUTH_SERVER": "auth01"}, cwd=tmp_path)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        if ran.stdout.count("stops with an empty spool") == 2:
            break
    assert "s3_write_web: stops with an empty spool" in ran.stdout
    assert "s3_write_auth: stops with an empty spool" in ran.stdout
    client = moto_server.client()
    for name, server in (("web", "web01"), ("auth", "auth01")):
        listed = client.list_objects_v2(Bucket=bucket, Prefix=server + "/")["Contents"]
        assert sorted(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                      for item in listed) == sorted(
            ("%s line %d" % (name, number)).encode() for number in range(5))
