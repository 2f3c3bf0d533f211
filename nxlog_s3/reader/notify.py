"""NOTIFY_QUEUE: S3 event notifications taken from SQS as hints of which servers have new
objects, so that a poll lists those alone; every server is still listed every
FULL_POLL_INTERVAL, the backstop. A hint is never the source of truth: a message lost,
duplicated, reordered, or about an object read already, delays a server by the backstop at
most and loses nothing. A message is deleted once the listing it led to is over and the
position it reached saved."""

import json
import threading
import urllib.parse

from botocore.exceptions import BotoCoreError, ClientError

from nxlog_s3.common.errors import NEEDS_FIXING, error_code, error_text, kind_of
from nxlog_s3.common.objects import STATE_PREFIX
from nxlog_s3.common.runtime import SCRIPT
from nxlog_s3.common.settings import ConfigError, _server

NOTIFY_WAIT = 2  # seconds a receive waits for messages: a long poll, short enough that
                 # NXLog's stop does not wait on it
HANDED_BACK = 1  # seconds before a message about a server another reader holds is seen again
BATCH = 10  # messages a receive or a delete takes at the most (SQS's limit)
MISSING_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def servers_named(body):
    """The servers whose prefixes the S3 event notification BODY names (straight from S3,
    or inside an SNS envelope): a set, empty for a test event or the readers' own objects;
    None for a message that is no S3 event notification."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification":
            data = json.loads(data["Message"])  # S3 -> SNS -> SQS
        if data.get("Event") == "s3:TestEvent":
            return set()
        keys = [urllib.parse.unquote_plus(record["s3"]["object"]["key"])
                for record in data["Records"]]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    servers = set()
    for key in keys:
        try:
            servers.add(_server(key.split("/", 1)[0]) if "/" in key and
                        not key.startswith(STATE_PREFIX) else None)
        except ValueError:
            pass  # no server's: the listing reports such keys
    return servers - {None}


class Notifications(object):
    """Receives NOTIFY_QUEUE's messages in a thread of its own, through CLIENT (SQS), and
    keeps them by server: pending until a listing of that server begins (take), then taken
    until it has caught up (done)."""

    def __init__(self, settings, client, log):
        self.settings, self.client, self.log = settings, client, log
        self.url = settings.NOTIFY_QUEUE
        self.lock = threading.Lock()
        self.pending = {}  # server -> receipt handles no listing has begun for
        self.taken = {}  # server -> receipt handles of the listing under way
        self.servers_of = {}  # receipt handle -> the servers it waits for still
        self.received = 0  # messages received
        self.stopping = threading.Event()
        self.thread = None

    def check(self):
        """At start: a queue that does not exist, or these credentials may not read, can
        never work (ConfigError); one that does not answer may, and is left to the thread."""
        try:
            self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        except (BotoCoreError, ClientError) as exc:
            if error_code(exc) in MISSING_QUEUE or kind_of(exc) in NEEDS_FIXING:
                raise ConfigError("%s: cannot use the queue NOTIFY_QUEUE=%s: %s" % (
                    SCRIPT, self.url, error_text(exc))) from None
            self.log.warning("the queue %s does not answer yet (%s); polling every server "
                             "meanwhile" % (self.url, error_text(exc)))

    def start(self):
        self.thread = threading.Thread(target=self._receive, daemon=True,
                                       name="%s notifications" % SCRIPT)
        self.thread.start()

    def stop(self):
        self.stopping.set()

    def _receive(self):
        """Receives until the stop, then hands back what no listing has finished with: the
        next reader sees it at once, not a visibility timeout later."""
        while not self.stopping.is_set():
            try:
                messages = self.client.receive_message(
                    QueueUrl=self.url, MaxNumberOfMessages=BATCH,
                    WaitTimeSeconds=NOTIFY_WAIT).get("Messages", ())
            except (BotoCoreError, ClientError) as exc:
                self.log.limited("queue", self.log.error, "cannot receive from the queue %s: "
                                 "%s; every server is still listed every FULL_POLL_INTERVAL"
                                 % (self.url, error_text(exc)))
                self.stopping.wait(NOTIFY_WAIT)
                continue
            self._note(messages)
        with self.lock:
            unfinished = set(self.pending) | set(self.taken)
        for server in unfinished:
            self.hand_back(server, 0)

    def _note(self, messages):
        """Keeps each message by the servers it names; deletes at once those that name none
        (a test event, the readers' own objects or those AFTER_READ=move moved, a message
        that is no notification)."""
        useless = []
        with self.lock:
            self.received += len(messages)
            for message in messages:
                handle, servers = message["ReceiptHandle"], servers_named(message["Body"])
                if servers and self.settings.MOVE_PREFIX:  # AFTER_READ=move's own objects
                    servers.discard(self.settings.MOVE_PREFIX.split("/")[0])
                if servers is None:
                    self.log.limited("not a notification", self.log.warning, "a message of "
                                     "the queue %s is no S3 event notification: deleted (%r)"
                                     % (self.url, message["Body"][:200]))
                if not servers:
                    useless.append(handle)
                    continue
                self.servers_of[handle] = set(servers)
                for server in servers:
                    self.pending.setdefault(server, []).append(handle)
        self.delete(useless)

    def hinted(self):
        """The servers with news no listing has begun for."""
        with self.lock:
            return set(self.pending)

    def take(self, server):
        """A listing of SERVER begins: the messages about it so far are its."""
        with self.lock:
            self.taken.setdefault(server, []).extend(self.pending.pop(server, ()))

    def done(self, server):
        """SERVER has caught up, its position saved: the receipt handles of the messages
        that wait for no other server, to be deleted."""
        with self.lock:
            finished = []
            for handle in self.taken.pop(server, ()):
                waiting = self.servers_of.get(handle, set())
                waiting.discard(server)
                if not waiting:
                    self.servers_of.pop(handle, None)
                    finished.append(handle)
            return finished

    def drop(self, server):
        """Messages about SERVER, which no reader with these settings reads: the receipt
        handles to delete."""
        with self.lock:
            self.taken.setdefault(server, []).extend(self.pending.pop(server, ()))
        return self.done(server)

    def hand_back(self, server, seconds=HANDED_BACK):
        """Another reader holds SERVER: its messages are seen again, by whichever reader
        receives them, SECONDS from now."""
        with self.lock:
            handles = self.pending.pop(server, []) + self.taken.pop(server, [])
            for handle in handles:
                self.servers_of.pop(handle, None)
        self._in_batches("change_message_visibility_batch", handles,
                         VisibilityTimeout=seconds)

    def delete(self, handles):
        self._in_batches("delete_message_batch", handles)

    def _in_batches(self, operation, handles, **entry):
        """OPERATION on the queue for HANDLES, BATCH at a time, each entry with ENTRY's
        fields too; a failure is logged and passes: a message not deleted comes again, one
        more hint."""
        for start in range(0, len(handles), BATCH):
            entries = [dict(entry, Id=str(number), ReceiptHandle=handle)
                       for number, handle in enumerate(handles[start:start + BATCH])]
            try:
                getattr(self.client, operation)(QueueUrl=self.url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                self.log.limited("queue " + operation, self.log.warning, "%s on the queue "
                                 "%s failed: %s; its messages come again, as hints" % (
                                     operation, self.url, error_text(exc)))


class Polls(object):
    """Which servers a read_data call looks at: every one without NOTIFY_QUEUE
    (NOTIFICATIONS None); with it, those with news, those not caught up, and each server
    once every FULL_POLL_INTERVAL. The queue's requests run through SUBMIT (a fetch
    thread's), not in NXLog's."""

    def __init__(self, settings, notifications, clock, submit):
        self.settings, self.notifications = settings, notifications
        self.clock, self.submit = clock, submit
        self.next_full = {}  # server -> when (monotonic) it is listed again without news
        self.servers_due = 0.0  # with SERVER=*: when the first segments are listed again

    def check(self):
        if self.notifications is not None:
            self.notifications.check()

    def start(self):
        if self.notifications is not None:
            self.notifications.check()
            self.notifications.start()

    def stop(self):
        if self.notifications is not None:
            self.notifications.stop()

    def relist_servers(self):
        """Whether SERVER=* lists the bucket's first segments in this call: every call
        without the queue; with it, every FULL_POLL_INTERVAL (news names new servers)."""
        if self.notifications is None:
            return True
        now = self.clock.monotonic()
        if now < self.servers_due:
            return False
        self.servers_due = now + self.settings.FULL_POLL_INTERVAL
        return True

    def with_news(self, servers):
        """SERVERS, and with SERVER=* the servers news named that no listing found yet."""
        if self.notifications is None or self.settings.SERVER != "*":
            return servers
        return sorted(set(servers) | self.notifications.hinted())

    def due(self, reading, listing, caught_up):
        """Of READING (the servers this reader reads, in order), those to look at now:
        LISTING (a listing under way) or not CAUGHT_UP, with news, or due a full poll.
        News of servers this reader does not read is deleted (no reader with these settings
        reads them) or handed back (another reader holds them, COORDINATION=s3)."""
        if self.notifications is None:
            return reading
        news, now = self.notifications.hinted(), self.clock.monotonic()
        for server in news - set(reading):
            if self.settings.COORDINATION == "s3" and (self.settings.SERVER == "*" or
                                                       server in self.settings.SERVER):
                self.submit(self.notifications.hand_back, server)
            else:
                self.submit(self.notifications.delete, self.notifications.drop(server))
        return [server for server in reading if server in listing or server in news or
                not caught_up.get(server) or now >= self.next_full.get(server, 0)]

    def listing_begins(self, server):
        """A poll's listing of SERVER begins: the news so far is its."""
        if self.notifications is not None:
            self.next_full[server] = self.clock.monotonic() + \
                self.settings.FULL_POLL_INTERVAL
            self.notifications.take(server)

    def caught_up(self, server):
        """SERVER has caught up, its position saved: the messages that led here go."""
        if self.notifications is not None:
            finished = self.notifications.done(server)
            if finished:
                self.submit(self.notifications.delete, finished)

    def let_go(self, servers):
        """SERVERS are another reader's now: their news is handed back."""
        if self.notifications is not None:
            for server in servers:
                self.submit(self.notifications.hand_back, server)

    def samples(self, labels):
        if self.notifications is None:
            return []
        return [("notifications_total", "counter", "messages received from NOTIFY_QUEUE",
                 labels, self.notifications.received)]
