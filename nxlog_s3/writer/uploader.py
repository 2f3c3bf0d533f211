"""Uploads: conditional PUTs, retried rounds, the transfer manager for large batches."""

import collections
import gzip
import io
import tempfile
import threading
import traceback

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from nxlog_s3.common.errors import NEEDS_FIXING, error_code, error_text, kind_of_code
from nxlog_s3.common.files import open_nofollow
from nxlog_s3.common.objects import (
    CONTENT_TYPES,
    METADATA_BATCH,
    METADATA_COMPRESSION,
    METADATA_EVENTS,
    METADATA_FIRST,
    METADATA_FORMAT,
    METADATA_LAST,
    METADATA_RELEASE,
    METADATA_TIMES,
    METADATA_VERSION,
    OBJECT_VERSION,
)
from nxlog_s3.common.optional import zstandard
from nxlog_s3.common.runtime import VERSION, count
from nxlog_s3.common.s3 import quoted
from nxlog_s3.writer.parquet import _write_parquet
from nxlog_s3.writer.spool import RETRY_DELAYS

MAX_KEY_CONFLICTS = 100  # taken keys in a row before a batch waits and tries again later
IN_MEMORY_UPLOAD = 64 * 1024 * 1024  # larger batches stream through the transfer manager,
# as one PUT up to the 5 GiB one PUT may hold, and as a multipart upload only above that: some
# stores (Ceph's radosgw 16) ignore If-None-Match when a multipart upload completes.
TRANSFER_CONFIG = TransferConfig(multipart_threshold=5 * 1024 ** 3,
                                 multipart_chunksize=64 * 1024 * 1024, use_threads=False)


class TryLater(Exception):
    """An upload that failed for now; the batch stays in the spool for the next round."""


def _if_none_match(params, **kwargs):
    """The transfer manager cannot pass If-None-Match: this adds it to the requests that
    store an object, one PUT or the completion of a multipart upload."""
    params["IfNoneMatch"] = "*"


class Uploader(object):
    """Stores the spool's closed batches in S3, each exactly once: a conditional PUT
    (If-None-Match: *), a retried one recognised by its batch id, a key another writer took
    named again. UPLOAD_THREADS threads run it; a batch S3 does not take now stays with its
    thread for the back-off (SLEEP, RETRY_DELAYS), so that no other tries it again at once."""


    def __init__(self, settings, spool, keys, client, clock, log, stopping,
                 in_memory_upload=IN_MEMORY_UPLOAD, transfer_config=TRANSFER_CONFIG):
        self.settings, self.spool, self.keys, self.client = settings, spool, keys, client
        self.in_memory_upload, self.transfer_config = in_memory_upload, transfer_config
        self.clock, self.log, self.stopping = clock, log, stopping
        self.counts_lock = threading.Lock()
        self.stored = [0, 0, 0]  # objects, events and bytes (as sent) S3 has stored
        self.errors = collections.Counter()  # failed uploads by error code
        for operation in ("PutObject", "CompleteMultipartUpload"):  # see _if_none_match
            client.meta.events.register("provide-client-params.s3." + operation,
                                        _if_none_match,
                                        unique_id="nxlog-s3-if-none-match-" + operation)

    def run(self):
        """An uploader thread: uploads batches, oldest first, until the writer stops."""
        failures = 0
        while not self.stopping.is_set():
            batch = None
            try:
                batch = self.spool.next_batch(timeout=RETRY_DELAYS[-1])
                if batch is None:
                    continue
                sent = self.upload(batch)
                self.spool.remove(batch)
                self.spool.note_stored(batch)
                self._count_stored(batch, sent)
                failures = 0
                continue
            except TryLater as problem:
                self.report(problem)
                self.clock.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)],
                                 self.stopping)
                failures += 1
            except Exception:  # never let the thread die: the spool would only grow
                self.log.limited("uploader", self.log.error, "unexpected error in the "
                                 "uploader, retrying: %s" % traceback.format_exc())
                self.clock.sleep(RETRY_DELAYS[-1], self.stopping)
            if batch is not None:  # to be tried again, by whichever thread is free first
                self.spool.give_back(batch)

    def _count_stored(self, batch, sent):
        with self.counts_lock:
            self.stored[0] += 1
            self.stored[1] += batch.events
            self.stored[2] += sent

    def upload(self, batch):
        """Stores BATCH exactly once; the bytes sent. Raises TryLater if S3 does not take it
        now."""
        try:
            for _ in range(MAX_KEY_CONFLICTS):
                sent = self._stored(batch)
                if sent is not None:
                    return sent
                self.keys.assign_after_conflict(batch)
                self.spool.save(batch)
        except (BotoCoreError, ClientError) as exc:
            raise TryLater(batch, error_text(exc), error_code(exc)) from None
        raise TryLater(batch, "%d keys in a row were taken by other writers"
                       % MAX_KEY_CONFLICTS, "conflicts")

    def report(self, problem):
        batch, reason, code = problem.args
        with self.counts_lock:
            self.errors[code] += 1
        permanent = kind_of_code(code) in NEEDS_FIXING
        self.log.limited(code, self.log.error if permanent else self.log.warning,
                         "cannot store %s (%s) now: %s; %s" % (
                             quoted(self.settings.BUCKET, batch.key),
                             count(batch.events, "event"), reason,
                             "fix this: the events wait in the spool, and uploads go on by "
                             "themselves once S3 takes them" if permanent else
                             "the events wait in the spool and uploads will be tried again"))
        self.spool.note_error(batch.key, code, str(reason))

    def _stored(self, batch):
        """Puts BATCH at its key: the bytes sent once S3 holds it (0 if an earlier attempt,
        whose answer was lost, stored it); None if another object has that key."""
        try:
            return self._put(batch)
        except ClientError as exc:
            if error_code(exc) != "PreconditionFailed":
                raise
            return 0 if self._landed_before(batch) else None

    def _landed_before(self, batch):
        """Whether the object at BATCH's key is BATCH itself, stored by an earlier attempt."""
        head = self.client.head_object(Bucket=self.settings.BUCKET, Key=batch.key,
                                       **self.settings.owner())
        return head.get("Metadata", {}).get(METADATA_BATCH) == batch.id

    def _put(self, batch):
        """Uploads BATCH to its key, only if that key is free (If-None-Match: *); the bytes
        sent."""
        arguments = self._object_arguments(batch)
        if batch.bytes <= self.in_memory_upload:
            body = io.BytesIO()
            self._encode(batch, body)
            self.client.put_object(Bucket=self.settings.BUCKET, Key=batch.key,
                                   Body=body.getvalue(), IfNoneMatch="*", **arguments)
            return body.tell()
        with tempfile.TemporaryFile(dir=self.spool.folder) as body:
            self._encode(batch, body)
            sent = body.tell()
            body.seek(0)
            self.client.upload_fileobj(body, self.settings.BUCKET, batch.key,
                                       ExtraArgs=arguments, Config=self.transfer_config)
            return sent

    def _object_arguments(self, batch):
        """Content-Type, Content-Encoding, metadata and the object options for BATCH."""
        settings = self.settings
        arguments = {"ContentType": CONTENT_TYPES[batch.format], "Metadata": {
            METADATA_VERSION: OBJECT_VERSION, METADATA_FORMAT: batch.format,
            METADATA_COMPRESSION: settings.COMPRESSION, METADATA_EVENTS: str(batch.events),
            METADATA_FIRST: batch.first, METADATA_LAST: batch.last, METADATA_BATCH: batch.id,
            METADATA_TIMES: "zoned", METADATA_RELEASE: VERSION}}
        if settings.COMPRESSION != "none":
            arguments["ContentEncoding"] = settings.COMPRESSION
        if settings.STORAGE_CLASS:
            arguments["StorageClass"] = settings.STORAGE_CLASS
        if settings.SSE:
            arguments["ServerSideEncryption"] = settings.SSE
        if settings.SSE_KMS_KEY_ID:
            arguments["SSEKMSKeyId"] = settings.SSE_KMS_KEY_ID
        arguments.update(settings.owner())
        return arguments

    def _encode(self, batch, target):
        """BATCH's body as S3 stores it, into TARGET (a binary file)."""
        with open_nofollow(batch.path("data")) as source:
            if batch.format != "parquet":
                self._compress(source, target)
            elif _write_parquet(source, target, self.settings.PARQUET_COMPRESSION):
                self.log.limited("surrogates", self.log.warning, "%s holds text with lone "
                                 "surrogates, which Parquet (UTF-8 only) cannot: they are "
                                 "stored as U+FFFD; FORMAT=json keeps them" % quoted(
                                     self.settings.BUCKET, batch.key))

    def _compress(self, source, target):
        """Copies SOURCE to TARGET (binary files), compressed by COMPRESSION."""
        compression = self.settings.COMPRESSION
        if compression == "gzip":
            target = gzip.GzipFile(fileobj=target, mode="wb", compresslevel=6, mtime=0)
        elif compression == "zstd":
            target = zstandard.ZstdCompressor().stream_writer(target, closefd=False)
        while True:
            chunk = source.read(1024 * 1024)
            if not chunk:
                break
            target.write(chunk)
        if compression != "none":
            target.close()
