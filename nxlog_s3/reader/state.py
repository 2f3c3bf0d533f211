"""The objects under STATE_PREFIX that readers with COORDINATION=s3 share: JSON bodies,
written only with S3's conditional writes, and S3's own clock."""

import calendar
import json

from botocore.exceptions import ClientError

from nxlog_s3.common.errors import error_code
from nxlog_s3.common.objects import STATE_PREFIX, utc_text
from nxlog_s3.common.s3 import quoted
from nxlog_s3.common.settings import _server
from nxlog_s3.reader.checkpoint import CheckpointError
from nxlog_s3.reader.listing import _server_time
from nxlog_s3.reader.position import Position, _mapping

STATE_VERSION = 1
MAX_STATE_BYTES = 64 * 1024 * 1024  # a state object read at the most: one planted in the
                                    # bucket cannot exhaust memory
NO_SUCH_KEY = ("NoSuchKey", "404")  # the object is not there (a missing bucket is not this)
TAKEN_CODES = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


class Taken(Exception):
    """A conditional write S3 refused: someone else wrote the object first."""


def state_key(server):
    return "%sservers/%s.json" % (STATE_PREFIX, server)


def server_of_state(key):
    """The server whose state object KEY is; None for another key (one planted with a name
    no server can have among them)."""
    name = key[len(STATE_PREFIX + "servers/"):]
    if not key.startswith(STATE_PREFIX + "servers/") or not name.endswith(".json"):
        return None
    try:
        return _server(name[:-len(".json")])
    except ValueError:
        return None


def reader_key(reader_id):
    return "%sreaders/%s" % (STATE_PREFIX, reader_id)


def late_key(server, reader_id):
    """The horizon's seconds of SERVER as READER_ID saved them: each holder writes its own
    object, so that one that lost the server cannot change the new holder's."""
    return "%slate/%s/%s.json" % (STATE_PREFIX, server, reader_id)


class StateObjects(object):
    """Reads and writes the objects under STATE_PREFIX in BUCKET through CLIENT."""

    def __init__(self, settings, client, clock):
        self.settings, self.client, self.clock = settings, client, clock

    def url(self, key=""):
        return "s3://%s/%s" % (self.settings.BUCKET, key)

    def get(self, key):
        """KEY's JSON body and ETag; (None, None) if there is no such object. ValueError for
        a body that is not JSON, or larger than MAX_STATE_BYTES."""
        try:
            response = self.client.get_object(Bucket=self.settings.BUCKET, Key=key)
        except ClientError as exc:
            if error_code(exc) in NO_SUCH_KEY:
                return None, None
            raise
        body = response["Body"].read(MAX_STATE_BYTES + 1)
        response["Body"].close()
        if len(body) > MAX_STATE_BYTES:
            raise ValueError("%s is larger than %d bytes: no reader wrote it"
                             % (self.url(key), MAX_STATE_BYTES))
        try:
            return json.loads(body.decode("utf-8")), response["ETag"]
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError("%s is not JSON: %s" % (self.url(key), exc)) from None

    def put(self, key, data, if_match=None, create=False):
        """Writes DATA as KEY's JSON body: CREATE only if there is no such object yet, or
        IF_MATCH only over the object of that ETag. Returns the new ETag; Taken if S3 refused
        the condition (or, with IF_MATCH, the object is gone)."""
        condition = {"IfNoneMatch": "*"} if create else \
            {"IfMatch": if_match} if if_match else {}
        try:
            response = self.client.put_object(
                Bucket=self.settings.BUCKET, Key=key, ContentType="application/json",
                Body=json.dumps(data, separators=(",", ":"), sort_keys=True).encode(),
                **condition)
        except ClientError as exc:
            if condition and error_code(exc) in TAKEN_CODES or \
                    if_match and error_code(exc) in NO_SUCH_KEY:  # deleted meanwhile
                raise Taken() from None
            raise
        return response["ETag"]

    def delete(self, key):
        self.client.delete_object(Bucket=self.settings.BUCKET, Key=key)

    def listed(self, folder):
        """Every object under STATE_PREFIX + FOLDER: a list of (key, ETag, when S3 stored it),
        and S3's time when it answered the first page."""
        entries, now = [], None
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.settings.BUCKET,
                                       Prefix=STATE_PREFIX + folder):
            if now is None:
                now = _server_time(page, self.clock)
            entries += [(item["Key"], item.get("ETag", ""),
                         calendar.timegm(item["LastModified"].utctimetuple()))
                        for item in page.get("Contents", ())]
        return entries, now

    def probe(self, reader_id):
        """Whether the store honors conditional writes: None if it does, else what failed.
        Writes one object of its own and deletes it, whatever happens; raises botocore's
        errors where S3 or the network failed."""
        key = "%sprobe/%s" % (STATE_PREFIX, reader_id)
        data = {"probe": reader_id, "step": 0}
        try:
            etag = self.put(key, data, create=True)
            data["step"] = 1
            if not self._taken(lambda: self.put(key, data, create=True)):
                return "a second create of %s with If-None-Match: * was taken, not refused " \
                    "with 412" % self.url(key)
            data["step"] = 2
            if self._taken(lambda: self.put(key, data, if_match=etag)):
                return "a write with If-Match and the object's own ETag was refused with 412"
            data["step"] = 3
            if not self._taken(lambda: self.put(key, data, if_match=etag)):
                return "a write with If-Match and an old ETag was taken, not refused with 412"
            return None
        except Taken:
            return "the first create of %s with If-None-Match: * was refused" % self.url(key)
        finally:
            self.delete(key)  # an S3 error here is raised: the object may be left

    @staticmethod
    def _taken(write):
        """Whether WRITE was refused as Taken."""
        try:
            write()
        except Taken:
            return True
        return False


def state_of(checkpoint, server, data):
    """The position (for CHECKPOINT, its late seconds read through its OBJECTS), holder,
    writes and late object the state DATA of SERVER names; ValueError for one that is not
    what a reader writes."""
    try:
        if _mapping(data, "the state").get("version") != STATE_VERSION or \
                data.get("server") != server or data.get("bucket") != checkpoint.settings.BUCKET:
            raise ValueError("not the state of version %d of %s in bucket %s"
                             % (STATE_VERSION, server, checkpoint.settings.BUCKET))
        holder, written, late = data["holder"], data["written"], data["late"]
        if not (holder is None or isinstance(holder, str)) or \
                not isinstance(written, int) or \
                not (late is None or isinstance(late, str) and
                     late.startswith(STATE_PREFIX + "late/%s/" % server)):
            raise ValueError("its holder, writes or late object are not what they can be")
        position = Position.from_json(checkpoint, _mapping(data["position"], "position"))
        if late is not None:
            seconds, _ = checkpoint.objects.get(late)
            if seconds is not None:
                position.add_late(_mapping(seconds, "late").get("seconds", {}))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError("malformed: %s %s" % (type(exc).__name__, exc)) from None
    return position, holder, written, late


def read_every_state(checkpoint):
    """Every server's position, in CHECKPOINT's POSITIONS, and its lease in its LEASES, as
    `status` shows them: the holder (None: released), when its state was saved, how old
    its holder's beat is, and whether that holder is alive."""
    beats, now = checkpoint.objects.listed("readers/")
    beat_of = {key[len(reader_key("")):]: stored for key, _, stored in beats}
    for key, _, stored in checkpoint.objects.listed("servers/")[0]:
        server = server_of_state(key)
        if server is None:
            continue
        try:
            data, _ = checkpoint.objects.get(key)
            if data is None:
                continue  # deleted since listed
            position, holder, _, _ = state_of(checkpoint, server, data)
        except ValueError as exc:
            raise CheckpointError("the state of %s, %s, is broken (%s)" % (
                server, quoted(checkpoint.settings.BUCKET, key), exc)) from None
        checkpoint.positions[server] = position
        beat = beat_of.get(holder)
        checkpoint.leases[server] = {
            "holder": holder, "saved": utc_text(stored),
            "beat_age_seconds": None if beat is None else max(0, now - beat),
            "alive": beat is not None and beat >= now - checkpoint.settings.LEASE_SECONDS}
