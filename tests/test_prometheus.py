"""contrib/prometheus/: the alert rules parse (`promtool check rules`), their unit tests show
each alert firing and staying quiet (`promtool test rules`), and the metrics files both
scripts write pass Prometheus' own linter (`promtool check metrics`)."""

import os
import shutil
import subprocess

import pytest

from helpers import ROOT, poll, put, wait_for
from nxlog_stub import api

RULES = os.path.join(ROOT, "contrib", "prometheus")
HOW_TO_GET_IT = "promtool is in Debian's prometheus package: apt-get install prometheus"


@pytest.fixture
def promtool():
    """promtool's path; where it is missing the test is skipped, saying how to install it
    (under CI=true it fails instead: .ci/run installs it)."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the promtool tests: " + HOW_TO_GET_IT)
        pytest.skip(HOW_TO_GET_IT)
    return path


def run(promtool, *arguments, stdin=None):
    result = subprocess.run([promtool] + list(arguments), cwd=RULES, input=stdin,
                            capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


def test_the_alert_rules_parse(promtool):
    status, output = run(promtool, "check", "rules", "nxlog-s3.rules.yml")
    assert status == 0, output
    assert "SUCCESS: 7 rules found" in output


def test_each_alert_fires_and_stays_quiet_as_its_unit_tests_say(promtool):
    status, output = run(promtool, "test", "rules", "nxlog-s3.rules.test.yml")
    assert status == 0, output


def test_every_alert_of_the_rules_has_unit_tests(promtool):
    with open(os.path.join(RULES, "nxlog-s3.rules.yml")) as handle:
        alerts = {line.split(":")[1].strip() for line in handle
                  if line.strip().startswith("- alert:")}
    with open(os.path.join(RULES, "nxlog-s3.rules.test.yml")) as handle:
        tested = [line.split(":")[1].strip() for line in handle
                  if line.strip().startswith("alertname:")]
    assert len(alerts) == 7 and set(tested) == alerts


def lint(promtool, path):
    with open(path) as handle:
        return run(promtool, "check", "metrics", stdin=handle.read())


def test_the_writers_metrics_file_passes_promtools_linter(promtool, settings,
                                                          load_then_lose_bucket, tmp_path):
    settings(METRICS_FILE=tmp_path / "nxlog_s3_write.prom")
    writer = load_then_lose_bucket("s3_write", "gone-bucket")
    assert api.call_write_data(writer.write_data, api.new_event(api.output_module(), {
        "raw_event": "one", "EventReceivedTime": "2026-03-01 10:00:05"}))
    wait_for(lambda: writer.instance.uploader.errors["NoSuchBucket"], what="a failed upload")
    writer.stop()
    text = (tmp_path / "nxlog_s3_write.prom").read_text()
    assert 'kind="NoSuchBucket"' in text  # every kind of sample is there
    assert lint(promtool, tmp_path / "nxlog_s3_write.prom") == (0, "")


def test_the_readers_metrics_file_passes_promtools_linter(promtool, s3, settings, load,
                                                          tmp_path):
    settings(METRICS_FILE=tmp_path / "nxlog_s3_read.prom", MAX_ATTEMPTS=1)
    put(s3, "web01/2026-03-01/10.00.00.1", "fine")
    put(s3, "web01/2026-03-01/10.00.01.1", b"\x1f\x8bnot gzip")
    reader = load("s3_read")
    poll(reader)
    reader.stop()
    [set_aside] = [line for line in (tmp_path / "nxlog_s3_read.prom").read_text().split("\n")
                   if line.startswith("nxlog_s3_reader_set_aside_objects{")]
    assert set_aside.endswith(" 1")  # every kind of sample is there
    assert lint(promtool, tmp_path / "nxlog_s3_read.prom") == (0, "")

