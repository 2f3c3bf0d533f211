"""`make demo`, the README's first command: the main job end to end against a local S3, in
batches as the README advises, every line back in order."""

import os
import subprocess
import sys

from helpers import ROOT


def test_the_demo_ships_a_batch_and_reads_every_line_back():
    ran = subprocess.run([sys.executable, os.path.join(ROOT, "demo.py")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "33 lines stored in s3://nxlog-demo/ as 1 batch object (gzip-compressed JSON " \
        "lines, every field):" in ran.stdout
    assert "33 lines shipped, 1 object stored, 33 lines read back" in ran.stdout
    assert ran.stdout.rstrip().splitlines()[-2].endswith(": identical, in order")
