"""Writer: one om_python instance."""

import threading

from nxlog_s3.common.metrics import Metrics
from nxlog_s3.common.runtime import SCRIPT, VERSION, Clock, Disk, Log, count
from nxlog_s3.common.s3 import check_bucket, new_client, probe_client
from nxlog_s3.writer.encode import Encoder
from nxlog_s3.writer.keys import Keys
from nxlog_s3.writer.spool import Spool
from nxlog_s3.writer.spool_files import SpoolFiles
from nxlog_s3.writer.uploader import IN_MEMORY_UPLOAD, TRANSFER_CONFIG, Uploader


class Writer(object):
    """One om_python instance: the spool, the keys and the uploader threads, built from
    SETTINGS. Tests pass in other collaborators: by default a CLIENT from the standard AWS
    chain, the system's CLOCK, the real file system (DISK), NXLog's LOG, and batches up to
    IN_MEMORY_UPLOAD bytes sent from memory (larger ones stream through the transfer
    manager, with TRANSFER_CONFIG)."""

    def __init__(self, settings, client=None, clock=None, disk=None, log=None,
                 in_memory_upload=IN_MEMORY_UPLOAD, transfer_config=TRANSFER_CONFIG):
        self.settings = settings
        self.clock = clock or Clock()
        self.log = log or Log(self.clock)
        self.client = client or new_client(settings, settings.UPLOAD_THREADS)
        self.keys = Keys(settings, self.client, self.clock, self.log)
        self.encoder = Encoder(settings, self.log)
        self.stopping = threading.Event()
        disk = disk or Disk()
        files = SpoolFiles(settings.SPOOL_DIR, self.clock, self.log, disk,
                           durable=settings.FSYNC != "os")
        self.spool = Spool(settings, files, self.keys, self.clock, self.log, disk,
                           self.stopping)
        self.uploader = Uploader(settings, self.spool, self.keys, self.client, self.clock,
                                 self.log, self.stopping, in_memory_upload, transfer_config)
        self.metrics = Metrics(settings.METRICS_FILE, self.samples, self.clock, disk or Disk(),
                               self.log)
        self.threads = []
        # NXLog's write_data, for every event: returns once the event is in the spool on
        # disk, within about MAX_CALL_WAIT whatever happens (Spool.append)
        self.write_data = self.encoder.writer(self.spool.append)

    def start(self, probe=None):
        """What NXLog's start of the module does: checks the spool's folder and the bucket
        (with PROBE, a client of one quick attempt by default), takes up what the spool
        holds and starts the uploads. Raises ConfigError for what can never work."""
        self.metrics.claim()
        self.spool.open()
        check_bucket(self.settings, probe or probe_client(self.settings), self.log)
        self.spool.recover()
        self.threads = [threading.Thread(target=self.uploader.run, daemon=True,
                                         name="%s uploader %d" % (SCRIPT, number))
                        for number in range(1, self.settings.UPLOAD_THREADS + 1)]
        for thread in self.threads:
            thread.start()
        self.metrics.start()
        self.log.info("nxlog-s3 %s started: %s" % (VERSION, self.describe()))
        return self

    def check(self, probe=None):
        """What start() checks, changing nothing in the bucket nor in the spool (a missing
        folder is not made, an open one not closed): what NXLog would log at start, and
        whether another writer uses the spool now."""
        self.metrics.check()
        in_use = self.spool.in_use()
        check_bucket(self.settings, probe or probe_client(self.settings), self.log)
        return self.describe() + ("; a running writer uses the spool now" if in_use else "")

    def describe(self):
        settings = self.settings
        return "%sevents go to s3://%s/%s/ (%s, %s, compression %s), spool %s" % (
            settings.describe_instance(), settings.BUCKET, settings.SERVER,
            "batches of up to %d events, %d bytes or %g s" % (
                settings.BATCH_EVENTS, settings.BATCH_BYTES, settings.BATCH_AGE)
            if settings.BATCHING else "one object per event", settings.BODY_FORMAT,
            settings.COMPRESSION, self.spool.where())

    def stop(self):
        """Ends this instance as the end of its process would, open batch left as it is.
        NXLog has no shutdown hook, but its release of write_data runs this
        (common/host.py); tests and programs that embed the script call it too."""
        self.stopping.set()
        self.spool.wake()
        for thread in self.threads:
            thread.join()
        self.metrics.stop()
        self.report_leftovers()
        self.spool.release()

    def report_leftovers(self):
        """Says in NXLog's log what the spool keeps at the stop, and why: those events go to
        S3 after the next start. Events held in memory (the disk full) are lost."""
        filling, closed, held = self.spool.leftovers()
        settings, reasons = self.settings, []
        if filling:
            reasons.append("%d in the batch being filled, which closes at %s, %s or %g s "
                           "after its first event" % (
                               filling, count(settings.BATCH_EVENTS, "event"),
                               count(settings.BATCH_BYTES, "byte"), settings.BATCH_AGE))
        if closed:
            reasons.append("%d in closed batches waiting for S3 (`status` shows the last "
                           "upload error)" % closed)
        if reasons:
            self.log.info("stops with %s in the spool %s, stored after the next start: %s" % (
                count(filling + closed, "event"), self.spool.where(),
                "; ".join(reasons)))
        else:
            self.log.info("stops with an empty spool: S3 holds every event written")
        if held:
            self.log.error("stops with %s held in memory, the spool's disk full: they are "
                           "lost" % count(held, "event"))

    def samples(self):
        """The writer's metrics, for METRICS_FILE (see Metrics)."""
        batches, events, size, oldest = self.spool.depth()
        with self.uploader.counts_lock:
            objects, stored, sent = self.uploader.stored
            errors = sorted(self.uploader.errors.items())
        labels = {"bucket": self.settings.BUCKET, "server": self.settings.SERVER}
        age = 0 if oldest is None else max(0, self.clock.time() - oldest)
        prefix = "nxlog_s3_writer_"
        samples = [
            ("events_total", "counter", "events write_data put in the spool", self.spool.taken),
            ("events_dropped_total", "counter", "events refused: SPOOL_FULL=drop with the "
             "spool or its disk full", self.spool.dropped),
            ("stored_objects_total", "counter", "objects S3 stored", objects),
            ("stored_events_total", "counter", "events in the objects S3 stored", stored),
            ("stored_bytes_total", "counter", "bytes of the objects S3 stored, as sent "
             "(compressed)", sent),
            ("spool_batches", "gauge", "batches in the spool, the one being filled included",
             batches),
            ("spool_events", "gauge", "events not in S3 yet", events),
            ("spool_bytes", "gauge", "bytes in the spool (uncompressed)", size),
            ("spool_oldest_event_age_seconds", "gauge", "age of the first event of the oldest "
             "batch in the spool; 0 when it is empty", age)]
        result = [(prefix + name, kind, summary, labels, value)
                  for name, kind, summary, value in samples]
        return result + [(prefix + "upload_errors_total", "counter", "failed uploads, by "
                          "error code", dict(labels, kind=code), number)
                         for code, number in errors]
