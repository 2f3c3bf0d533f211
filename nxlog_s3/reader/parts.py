"""Parts: what reads the bucket, built once from the settings, for the reader and for the
commands alike (`status`, `audit` and `replay` build no Reader)."""

from nxlog_s3.common.runtime import Clock, Disk, Log
from nxlog_s3.common.s3 import new_client
from nxlog_s3.reader.checkpoint import Checkpoint
from nxlog_s3.reader.decode import Decoder
from nxlog_s3.reader.fetch import WHOLE_OBJECT, Fetcher
from nxlog_s3.reader.listing import Listing
from nxlog_s3.reader.position import Seconds
from nxlog_s3.reader.shared import SharedCheckpoint


class Parts(object):
    """The S3 CLIENT (by default from the standard AWS chain), the CLOCK, the LOG, the
    checkpoint (on DISK, or in the bucket with COORDINATION=s3; not taken until loaded),
    the fetcher (objects up to WHOLE_OBJECT bytes fetched whole), the listing and the
    decoder, passed to one another."""

    def __init__(self, settings, client=None, clock=None, disk=None, log=None,
                 whole_object=WHOLE_OBJECT):
        self.settings = settings
        self.clock = clock or Clock()
        self.log = log or Log(self.clock)
        self.client = client or new_client(settings, settings.FETCH_THREADS + 1)
        self.checkpoint = self._checkpoint(settings, disk or Disk(), client)
        self.fetcher = Fetcher(settings, self.client, whole_object)
        self.listing = Listing(settings, self.client, self.checkpoint, self.fetcher, self.clock,
                               self.log)
        self.decoder = Decoder(settings, self.log)

    def _checkpoint(self, settings, disk, client):
        """A file of this reader's; with COORDINATION=s3, positions in the bucket, written by
        a client of short timeouts (the reader waits on it: a save, a beat) unless CLIENT was
        given."""
        seconds = Seconds(settings.KEY_TIME)
        if settings.COORDINATION == "none":
            return Checkpoint(settings, seconds, self.clock, self.log, disk)
        return SharedCheckpoint(settings, seconds, self.clock, self.log, disk, client or new_client(
            settings, 2, attempts=2, timeout_cap=settings.LEASE_SECONDS / 6.0))

    def stop(self):
        """Ends the fetch threads."""
        self.fetcher.stop()
