"""A bad setting stops the script at start with one message that names it and says what it
takes: no traceback per event, no guessing."""

import os

import pytest

from conftest import ROOT
from nxlog_stub.runner import LoadError, load_script

BOTH = ("s3_write", "s3_read")
BAD_SETTINGS = [
    (BOTH, "BUCKET", "", "not a bucket name"),
    (BOTH, "BUCKET", "a/b", "not a bucket name"),
    (BOTH, "SERVER", "web/01", "use letters, digits"),
    (BOTH, "SERVER", "..", "use letters, digits"),
    (BOTH, "SERVER", "a..b", "use letters, digits"),
    (BOTH, "SERVER", "../etc", "use letters, digits"),
    (BOTH, "SERVER", "web\n01", "use letters, digits"),
    (BOTH, "RETRY_MODE", "legacy", "use one of: standard, adaptive"),
    (BOTH, "RETRY_ATTEMPTS", "0", "must be at least 1"),
    (BOTH, "RETRY_ATTEMPTS", "many", "not a number"),
    (BOTH, "CONNECT_TIMEOUT", "-1", "must be at least 0.1"),
    (BOTH, "READ_TIMEOUT", "", "not a number"),
    (("s3_write",), "FORMAT", "xml", "use one of: raw, json, pickle"),
    (("s3_write",), "COMPRESSION", "zip", "use one of: auto, none, gzip, zstd"),
    (("s3_write",), "KEY_TIME", "gmt", "use one of: utc, local"),
    (("s3_read",), "MAXKEYS", "0", "must be from 1 to 1000"),
    (("s3_read",), "MAXKEYS", "1001", "must be from 1 to 1000"),
    (("s3_read",), "POLL_INTERVAL", "-1", "must be at least 0.01"),
    (("s3_read",), "POLL_INTERVAL", "soon", "not a number"),
    (("s3_read",), "MAX_OBJECTS_PER_CALL", "0", "must be at least 1"),
    (("s3_read",), "ALLOW_PICKLE", "maybe", "use true or false"),
    (("s3_read",), "CHECKPOINT", " ", "must name a file or folder"),
]


@pytest.mark.parametrize("script, name, value, reason", [
    (script, name, value, reason) for scripts, name, value, reason in BAD_SETTINGS
    for script in scripts])
def test_a_bad_setting_stops_the_module_with_one_message_naming_it(settings, load, script, name,
                                                                     value, reason):
    settings(**{name: value})
    with pytest.raises(LoadError) as caught:
        load(script)
    assert "ConfigError: %s: NXLOG_S3_%s=%r is not valid: %s" % (script, name, value, reason) \
        in str(caught.value)


@pytest.mark.parametrize("script", BOTH)
def test_a_bad_value_at_the_top_of_the_script_is_named_there(tmp_path, script):
    with open(os.path.join(ROOT, script + ".py")) as handle:
        source = handle.read()
    copy = tmp_path / ("%s_edited.py" % script)
    copy.write_text(source.replace('RETRY_MODE = "standard"', 'RETRY_MODE = "sometimes"', 1))
    with pytest.raises(LoadError) as caught:
        load_script(str(copy), "edited")
    assert "%s_edited: RETRY_MODE at the top of %s='sometimes' is not valid" % (script, copy) \
        in str(caught.value)
