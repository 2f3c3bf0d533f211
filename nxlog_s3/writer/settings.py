"""The writer's settings, checked together."""

import re

import botocore

from nxlog_s3.common.optional import parquet_library, zstandard
from nxlog_s3.common.runtime import SCRIPT
from nxlog_s3.common.settings import (
    ConfigError,
    Settings,
    _bucket,
    _choice,
    _flag,
    _metrics_file,
    _number,
    _path,
    _server,
)

OLDEST_BOTOCORE = (1, 35, 16)  # the first that sends If-None-Match on PutObject


def _optional(pattern, what):
    def parse(text):
        value = text.strip()
        if value and not re.match("^(?:%s)$" % pattern, value):
            raise ValueError("not %s" % what)
        return value
    return parse


def _sse(text):
    value = text.strip()
    canonical = {"": "", "aes256": "AES256", "aws:kms": "aws:kms"}.get(value.lower())
    if canonical is None:
        raise ValueError("use AES256 or aws:kms, or leave it empty")
    return canonical


def _check_botocore(version):
    """Refuses a botocore too old for conditional writes (Debian 12 packages 1.29)."""
    found = tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
    if found < OLDEST_BOTOCORE:
        raise ConfigError("%s: botocore %s cannot write objects conditionally (If-None-Match), "
                          "so it could overwrite objects; install boto3 1.35.16 or newer for "
                          "the Python NXLog runs (see README.md)" % (SCRIPT, version))


class WriterSettings(Settings):
    """The settings at the top of s3_write.py, parsed; also what follows from them: BATCHING,
    BODY_FORMAT (what a batch's body holds), COMPRESSION with auto resolved and SPOOL_DIR's
    default."""

    SPEC = (
        ("BUCKET", _bucket), ("SERVER", _server), ("KEY_TIME", _choice("utc", "local")),
        ("MAX_AHEAD", _number(int, 0)), ("BATCH_EVENTS", _number(int, 1)),
        ("BATCH_BYTES", _number(int, 1)), ("BATCH_AGE", _number(float, 0.1)),
        ("FORMAT", _choice("raw", "json", "pickle", "parquet")),
        ("COMPRESSION", _choice("auto", "none", "gzip", "zstd")),
        ("PARQUET_COMPRESSION", _choice("zstd", "snappy", "gzip", "none")),
        ("KEY_SUFFIX", _choice("auto", "always", "never")), ("SPOOL_DIR", _path),
        ("SPOOL_MAX_BYTES", _number(int, 1)), ("SPOOL_FULL", _choice("block", "drop")),
        ("FSYNC", _choice("event", "batch", "os")), ("UPLOAD_THREADS", _number(int, 1, 64)),
        ("STORAGE_CLASS", _optional("[A-Z_]+", "a storage class such as STANDARD_IA")),
        ("SSE", _sse),
        ("SSE_KMS_KEY_ID", _optional("[A-Za-z0-9:/_+=.,@-]+", "a KMS key id")),
        ("EXPECTED_BUCKET_OWNER", _optional("[0-9]{12}", "a 12-digit account id")),
        ("RETRY_MODE", _choice("standard", "adaptive")), ("RETRY_ATTEMPTS", _number(int, 1)),
        ("TLS_VERIFY", _flag), ("CONNECT_TIMEOUT", _number(float, 0.1)),
        ("READ_TIMEOUT", _number(float, 0.1)), ("METRICS_FILE", _metrics_file))

    def check(self):
        self.SPOOL_DIR = self.SPOOL_DIR or self.named_after_instance("s3_write", ".spool")
        self.BATCHING = self.BATCH_EVENTS > 1
        parquet = self.FORMAT == "parquet"
        self.BODY_FORMAT = "parquet" if parquet else "jsonl" if self.BATCHING else self.FORMAT
        if parquet:
            self._check_parquet()
        if self.COMPRESSION == "auto":
            self.COMPRESSION = "gzip" if self.BATCHING and not parquet else "none"
        if self.BATCHING and self.FORMAT == "pickle":
            raise ConfigError("%s: FORMAT=pickle cannot be batched: batches are JSON lines; use "
                              "FORMAT=json, or BATCH_EVENTS=1" % SCRIPT)
        if self.COMPRESSION == "zstd" and zstandard is None:
            raise ConfigError("%s: COMPRESSION=zstd needs the zstandard package for the Python "
                              "NXLog runs (pip install zstandard), or use gzip" % SCRIPT)
        if self.SSE_KMS_KEY_ID and self.SSE != "aws:kms":
            raise ConfigError("%s: SSE_KMS_KEY_ID is set, so SSE must be aws:kms" % SCRIPT)
        _check_botocore(botocore.__version__)

    def _check_parquet(self):
        if not self.BATCHING:
            raise ConfigError("%s: FORMAT=parquet is for batches: set BATCH_EVENTS above 1 (10000 "
                              "or more)" % SCRIPT)
        if self.COMPRESSION not in ("auto", "none"):
            raise ConfigError("%s: COMPRESSION=%s with FORMAT=parquet: Parquet compresses inside "
                              "the file, as PARQUET_COMPRESSION says; leave COMPRESSION at auto"
                              % (SCRIPT, self.COMPRESSION))
        if parquet_library() is None:
            raise ConfigError("%s: FORMAT=parquet needs the pyarrow package for the Python NXLog "
                              "runs (pip install pyarrow), or use FORMAT=json" % SCRIPT)
