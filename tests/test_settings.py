"""A bad setting stops the script at start with one message that names it and says what it
takes: no traceback per event, no guessing."""

import ast
import os
import stat
import subprocess

import pytest

from helpers import ROOT, free_port
from nxlog_stub import api

BOTH = ("s3_write", "s3_read")


def settings_at_the_top(script):
    """{NAME: default value} of the settings block at the top of SCRIPT."""
    with open(os.path.join(ROOT, script + ".py")) as handle:
        source = handle.read()
    block = source[source.index("# ---- Settings"):source.index("# ---- End of settings")]
    return {node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(block).body if isinstance(node, ast.Assign)}


# Numbers and flags are each tried with the wrong type, a negative value and an empty one;
# text settings with the values below.
TEXT_SETTINGS = [
    (BOTH, "BUCKET", "", "not a bucket name"),
    (BOTH, "BUCKET", "a/b", "not a bucket name"),
    (BOTH, "SERVER", "web/01", "use letters, digits"),
    (BOTH, "SERVER", "..", "use letters, digits"),
    (BOTH, "SERVER", "a..b", "use letters, digits"),
    (BOTH, "SERVER", "../etc", "use letters, digits"),
    (BOTH, "SERVER", "web\n01", "use letters, digits"),
    (BOTH, "RETRY_MODE", "legacy", "use one of: standard, adaptive"),
    (BOTH, "RETRY_MODE", "", "use one of: standard, adaptive"),
    (("s3_write",), "FORMAT", "xml", "use one of: raw, json, pickle, parquet"),
    (("s3_write",), "PARQUET_COMPRESSION", "lz4", "use one of: zstd, snappy, gzip, none"),
    (("s3_write",), "KEY_SUFFIX", "yes", "use one of: auto, always, never"),
    (("s3_write",), "COMPRESSION", "zip", "use one of: auto, none, gzip, zstd"),
    (BOTH, "KEY_TIME", "gmt", "use one of: utc, local"),
    (("s3_write",), "SPOOL_FULL", "wait", "use one of: block, drop"),
    (("s3_write",), "FSYNC", "always", "use one of: event, batch, os"),
    (("s3_write",), "STORAGE_CLASS", "standard ia", "not a storage class"),
    (("s3_write",), "SSE", "rsa", "use AES256 or aws:kms"),
    (("s3_write",), "SSE_KMS_KEY_ID", "my key", "not a KMS key id"),
    (("s3_write",), "EXPECTED_BUCKET_OWNER", "12345", "not a 12-digit account id"),
    (("s3_read",), "SERVER", "web01,../x", "use letters, digits"),
    (("s3_read",), "START_AT", "later", "use one of: beginning, now"),
    (("s3_read",), "AFTER_READ", "archive", "use one of: keep, delete, move"),
    (("s3_read",), "MOVE_PREFIX", "read", "a prefix such as read/"),
    (("s3_read",), "MOVE_PREFIX", "/read/", "a prefix such as read/"),
    (("s3_read",), "MAXKEYS", "1001", "must be from 1 to 1000"),
    (("s3_read",), "COORDINATION", "zookeeper", "use one of: none, s3"),
    (("s3_read",), "READER_NAME", "reader/1", "use letters, digits"),
    (("s3_read",), "LEASE_SECONDS", "5", "must be from 6 to 3600"),
    (("s3_read",), "NOTIFY_QUEUE", "arn:aws:sqs:us-east-1:123456789012:q",
     "an SQS queue URL such as"),
    (("s3_read",), "FULL_POLL_INTERVAL", "0.5", "must be at least 1"),
    (("s3_read",), "FETCH_THREADS", "65", "must be from 1 to 64"),
    (("s3_write",), "UPLOAD_THREADS", "65", "must be from 1 to 64"),
    (BOTH, "RETRY_ATTEMPTS", "0", "must be at least 1"),
    (BOTH, "CONNECT_TIMEOUT", "0", "must be at least 0.1"),
    (BOTH, "METRICS_FILE", "s3.txt", "node_exporter's textfile collector reads only files "
     "named *.prom"),
]


def typed_cases(script):
    """(name, bad value, reason) for each number and flag setting of SCRIPT."""
    for name, default in settings_at_the_top(script).items():
        if isinstance(default, bool):
            yield from ((name, value, "use true or false") for value in ("", "maybe", "-1"))
        elif isinstance(default, (int, float)):
            yield from ((name, "", "not a number"), (name, "ten", "not a number"),
                        (name, "-1", "must be"))


CASES = sorted({(script, name, value, reason) for scripts, name, value, reason in TEXT_SETTINGS
                for script in scripts} |
               {(script,) + case for script in BOTH for case in typed_cases(script)})


# Any text is a path (empty: the instance's default); what it names is checked at start.
ANY_TEXT = {"SPOOL_DIR", "CHECKPOINT"}


def test_every_setting_of_both_scripts_has_bad_values_tried():
    for script in BOTH:
        tried = {name for tried_script, name, _, _ in CASES if tried_script == script}
        assert tried == set(settings_at_the_top(script)) - ANY_TEXT, script


def settings_of(module):
    """The script MODULE's settings, parsed from its defaults and NXLOG_S3_* as at start."""
    kind = module.WriterSettings if hasattr(module, "WriterSettings") else module.ReaderSettings
    return kind.of_script(vars(module), module.__file__)


@pytest.mark.parametrize("script, name, value, reason", CASES)
def test_a_bad_setting_is_refused_with_one_message_naming_it(s3, settings, load, script, name,
                                                             value, reason):
    module = load(script)
    settings(**{name: value})
    with pytest.raises(module.ConfigError) as caught:
        settings_of(module)
    assert str(caught.value).startswith("%s: NXLOG_S3_%s=%r is not valid: %s" % (
        script, name, value, reason))


@pytest.mark.parametrize("script", BOTH)
def test_a_bad_setting_keeps_nxlog_from_starting_with_one_line_and_no_traceback(
        settings, start_refused, script):
    settings(KEY_TIME="gmt")
    assert start_refused(script) == [
        "ERROR %s: NXLOG_S3_KEY_TIME='gmt' is not valid: use one of: utc, local" % script]


@pytest.mark.parametrize("script", BOTH)
def test_a_bad_value_at_the_top_of_the_script_is_named_there(tmp_path, start_refused, script):
    with open(os.path.join(ROOT, script + ".py")) as handle:
        source = handle.read()
    copy = tmp_path / ("%s_edited.py" % script)
    copy.write_text(source.replace('RETRY_MODE = "standard"', 'RETRY_MODE = "sometimes"', 1))
    assert start_refused(script, path=str(copy)) == [
        "ERROR %s_edited: RETRY_MODE at the top of %s='sometimes' is not valid: use one of: "
        "standard, adaptive" % (script, copy)]


# ---- What the settings point at, checked at start ----

@pytest.mark.http
@pytest.mark.parametrize("script", BOTH)
def test_a_bucket_that_does_not_exist_keeps_nxlog_from_starting(moto_server, settings,
                                                                start_refused, monkeypatch,
                                                                script):
    settings(BUCKET="no-such-bucket")
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    assert start_refused(script, endpoint=moto_server.url)[-1] == (
        "ERROR %s: the bucket no-such-bucket does not exist (BUCKET, or NXLOG_S3_BUCKET); this "
        "script never creates one" % script)


@pytest.mark.parametrize("script", BOTH)
def test_no_credentials_at_start_are_logged_with_where_to_put_them_and_the_module_runs(
        s3, settings, load, monkeypatch, script):
    """At boot an instance role may not answer yet: the writer spools meanwhile, and the
    reader polls again."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask either
    module = load(script)
    assert module.instance.settings.BUCKET == "nxlog-archive"
    assert "%s: no AWS credentials found: set AWS_PROFILE" % script in api.logged("WARNING")[0]


@pytest.mark.parametrize("script", BOTH)
def test_an_unreachable_endpoint_at_start_does_not_stop_the_module(settings, load, monkeypatch,
                                                                    script):
    """S3 may come back: the writer spools meanwhile, the reader polls again."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:%d" % free_port())
    settings(CONNECT_TIMEOUT=0.5)
    assert load(script).instance.settings.BUCKET == "nxlog-archive"
    assert "S3 does not answer yet" in api.logged("WARNING")[0]


FOLDER_SETTINGS = [("s3_write", "SPOOL_DIR", "spool"),
                   ("s3_read", "CHECKPOINT", os.path.join("state", "checkpoint"))]


def folder_of(setting, path):
    return path if setting == "SPOOL_DIR" else os.path.dirname(path)


@pytest.mark.parametrize("script, setting, path", FOLDER_SETTINGS)
def test_a_folder_that_cannot_be_made_keeps_nxlog_from_starting(settings, start_refused,
                                                                tmp_path, script, setting,
                                                                path):
    (tmp_path / "a-file").write_text("")
    settings(**{setting: os.path.join("a-file", path)})
    assert start_refused(script)[-1].startswith(
        "ERROR %s: cannot use the folder %s (%s): [Errno 20] Not a directory" % (
            script, tmp_path / "a-file" / folder_of(setting, path), setting))


@pytest.mark.parametrize("script, setting, path", FOLDER_SETTINGS)
def test_a_folder_this_process_cannot_write_keeps_nxlog_from_starting(
        settings, start_refused, tmp_path, script, setting, path):
    folder = tmp_path / folder_of(setting, path)
    folder.mkdir(mode=0o700)
    if os.geteuid() == 0:  # root may write anywhere, except on a read-only file system
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs",
                           str(folder)]).returncode:
            pytest.skip("cannot mount a read-only file system here")
    else:
        folder.chmod(0o500)
    try:
        settings(**{setting: path})
        logged = start_refused(script)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], check=True)
    assert logged[-1] == "ERROR %s: the folder %s (%s) is not readable and writable by this " \
        "process (the user NXLog runs as)" % (script, folder, setting)


@pytest.mark.parametrize("script, setting, path", FOLDER_SETTINGS)
def test_a_folder_every_user_may_write_to_keeps_nxlog_from_starting(
        settings, start_refused, tmp_path, script, setting, path):
    folder = tmp_path / folder_of(setting, path)
    folder.mkdir()
    folder.chmod(0o777)
    settings(**{setting: path})
    assert start_refused(script)[-1] == (
        "ERROR %s: every user may write to the folder %s (%s): chmod o-w it, or choose "
        "another" % (script, folder, setting))


@pytest.mark.parametrize("script, setting, path", FOLDER_SETTINGS)
def test_a_missing_folder_is_made_readable_by_its_owner_only(s3, settings, load, tmp_path,
                                                             script, setting, path):
    settings(**{setting: path})
    load(script)
    assert stat.S_IMODE(os.stat(tmp_path / folder_of(setting, path)).st_mode) == 0o700
