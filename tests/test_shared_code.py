"""The two scripts must each be one self-contained file, so the code both need (settings,
the S3 client) stands in each of them. This keeps the two copies from drifting apart."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_block(script):
    with open(os.path.join(ROOT, script)) as handle:
        text = handle.read()
    start = text.index("\n", text.index("# ---- Shared with"))
    return text[start:text.index("# ---- End of the shared code")]


def test_the_shared_code_of_both_scripts_is_identical():
    assert shared_block("s3_write.py") == shared_block("s3_read.py")


def test_the_shared_code_is_not_empty():
    assert "def _setting(" in shared_block("s3_write.py")
