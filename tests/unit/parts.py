"""What the unit tests share: each part of nxlog_s3/ built alone, from the settings at the
top of its script (the `defaults` modules) and NXLOG_S3_* values a test gives."""

from nxlog_s3.common.runtime import Clock
from nxlog_s3.reader import defaults as reader_defaults
from nxlog_s3.reader.settings import ReaderSettings
from nxlog_s3.writer import defaults as writer_defaults
from nxlog_s3.writer.settings import WriterSettings


def writer_settings(**values):
    environ = {"NXLOG_S3_" + name: str(value) for name, value in values.items()}
    return WriterSettings(WriterSettings.defaults_in(vars(writer_defaults)), environ,
                          "s3_write.py")


def reader_settings(**values):
    environ = {"NXLOG_S3_" + name: str(value) for name, value in values.items()}
    return ReaderSettings(ReaderSettings.defaults_in(vars(reader_defaults)), environ,
                          "s3_read.py")


class StillClock(Clock):
    """A clock that moves only when told to (or slept on): no test waits on the real one."""

    def __init__(self, now=1_772_359_200.0):  # 2026-03-01 10:00:00 UTC
        self.now = now

    def time(self):
        return self.now

    def monotonic(self):
        return self.now

    def sleep(self, seconds, interrupt=None):
        self.now += seconds
