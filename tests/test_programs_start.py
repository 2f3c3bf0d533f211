"""Every program a developer runs by hand (bench/, tools/, the test report) starts from a
fresh checkout, as the README and the Makefile run it: its imports are found, --help works.
The wheel leaves the package and the stub out of site-packages, so nothing but each program's
own path makes them importable."""

import os
import subprocess
import sys

import pytest

from helpers import ROOT

PROGRAMS = ["bench/nxlog_bench.py", "bench/bench_write.py", "bench/bench_read.py",
            "bench/bench_parquet.py", "bench/compare.py", "tools/amalgamate.py",
            "tests/reliability_report.py"]


@pytest.mark.parametrize("program", PROGRAMS)
def test_the_program_starts_and_shows_its_help(program, tmp_path):
    ran = subprocess.run([sys.executable, os.path.join(ROOT, program), "--help"],
                         cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=""),
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("usage: ")
