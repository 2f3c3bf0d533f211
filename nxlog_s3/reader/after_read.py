"""AFTER_READ: what becomes of an object once read (kept, deleted, or moved)."""

from botocore.exceptions import BotoCoreError, ClientError

from nxlog_s3.common.s3 import quoted


class AfterRead(object):
    """Deletes or moves each object read, as AFTER_READ says, in the FETCHER's threads; an
    object whose text NXLog could not take whole is kept (see keep)."""

    def __init__(self, settings, client, fetcher, log):
        self.settings, self.client, self.fetcher, self.log = settings, client, fetcher, log
        self.kept = set()  # keys whose events NXLog could not take whole: never removed
        self.pending = []  # futures of the work not seen done yet

    def keep(self, key):
        """KEY stays where it is, whatever AFTER_READ says: a person should see it."""
        self.kept.add(key)

    def done_with(self, key, read):
        """KEY was READ (else set aside, and left where it is): deleted or moved."""
        if read and self.settings.AFTER_READ != "keep" and key not in self.kept:
            self.pending.append(self.fetcher.submit(self._after_read, key))
        self.kept.discard(key)

    def wait(self, deadline):
        """The work under way, waited for until the call's DEADLINE, and again at the next
        call for what was not done by then."""
        if self.pending:
            deadline.wait(self.pending)
            self.pending = [done for done in self.pending if not done.done()]

    def _after_read(self, key):
        settings = self.settings
        try:
            if settings.AFTER_READ == "move":
                self.client.copy({"Bucket": settings.BUCKET, "Key": key}, settings.BUCKET,
                                 settings.MOVE_PREFIX + key)
            self.client.delete_object(Bucket=settings.BUCKET, Key=key)
        except (BotoCoreError, ClientError) as exc:
            self.log.warning("read %s, but could not %s it: %s; it stays where it is"
                             % (quoted(settings.BUCKET, key), settings.AFTER_READ, exc))
