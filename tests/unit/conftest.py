"""Fixtures of the unit tests: a clock held still, a log that rate-limits nothing, the disk."""

import pytest

from nxlog_s3.common.runtime import Disk, Log
from parts import StillClock


@pytest.fixture
def clock():
    return StillClock()


@pytest.fixture
def log(clock):
    return Log(clock, every=0)


@pytest.fixture
def disk():
    return Disk()
