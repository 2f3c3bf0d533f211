"""Fetching objects ahead, whole or streamed, while events are posted in order."""

import collections
import concurrent.futures
import io
import queue
import threading

from nxlog_s3.common.runtime import SCRIPT
from nxlog_s3.reader.deadline import TimeUp
from nxlog_s3.reader.lines import CHUNK_BYTES

WHOLE_OBJECT = 8 * 1024 * 1024  # objects up to this size are fetched ahead, whole, by the
STREAMED_CHUNK = 1024  # events an object's decoding thread hands read_data at a time...
STREAMED_AHEAD = 2  # ...and chunks it keeps ready


class Fetcher(object):
    """GETs objects in FETCH_THREADS threads started at the first use: small ones (up to
    WHOLE_OBJECT) whole and ahead, larger ones when their turn comes, as a response whose
    body streams. The threads also fetch the listings' pages and do AFTER_READ's work."""

    def __init__(self, settings, client, whole_object=WHOLE_OBJECT):
        self.settings, self.client, self.whole_object = settings, client, whole_object
        self.pool = None

    def ahead(self, item):
        """A future of ITEM's object read whole; None for a large one, whose GET waits for
        its turn (see get): its connection would sit idle meanwhile."""
        return self.submit(self.whole, item.key) if item.size <= self.whole_object else None

    def get(self, item):
        """A future of ITEM's GET, a large one's response whose body streams as it is read."""
        return self.submit(self.stream, item.key)

    def submit(self, function, *arguments):
        """FUNCTION(*ARGUMENTS) in a fetch thread: a future of what it returns."""
        if self.pool is None:
            self.pool = concurrent.futures.ThreadPoolExecutor(self.settings.FETCH_THREADS,
                                                              thread_name_prefix=SCRIPT)
        return self.pool.submit(function, *arguments)

    def whole(self, key):
        response = self.stream(key)
        response["Body"] = io.BytesIO(response["Body"].read())
        return response

    def stream(self, key):
        return self.client.get_object(Bucket=self.settings.BUCKET, Key=key)

    def stop(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


class Round(object):
    """One pass over a server's new objects (ITEMS: a listing pass, whose next(deadline)
    gives them in reading order), which may take several calls: the listing goes on where
    the last call stopped, and the small objects fetched ahead (FETCH_THREADS of them) wait
    for their turn. Objects SKIP(item) is true for are passed over. LATE tells a re-listing
    of the horizon from a poll's pass over the window. BEGIN(item) starts an object's work
    ahead: by default the fetch of a small object (see Fetcher.ahead)."""

    def __init__(self, items, fetcher, late=False, skip=None, begin=None):
        self.items, self.fetcher, self.late = items, fetcher, late
        self.skip = skip or (lambda item: False)
        self.begin = begin or fetcher.ahead
        self.over = False  # the listing came to its end
        self.ahead = collections.deque()  # (item, future, or None for a large object)

    def next(self, deadline):
        """The next (item, future) in key order; None once the pass is over. TimeUp if the
        listing is still going at DEADLINE with nothing to read yet."""
        while not self.over and len(self.ahead) <= self.fetcher.settings.FETCH_THREADS:
            try:  # with objects at hand, a page not here yet is not waited for
                item = self.items.next(deadline.now_or_never() if self.ahead else deadline)
            except TimeUp:
                if self.ahead:
                    break
                raise
            if item is None:
                self.over = True
            elif not self.skip(item):
                self.ahead.append((item, self.begin(item)))
        if self.ahead:
            return self.ahead.popleft()
        return None

    def again(self, entry):
        """ENTRY's object is not done yet: it comes first in the next call."""
        self.ahead.appendleft(entry)

    def fetch_again(self, key):
        """KEY's object, waiting here, was opened and closed for another server's turn: its
        fetch begins again (its events posted so far are passed over when it is read on)."""
        for index, (item, _) in enumerate(self.ahead):
            if item.key == key:
                self.ahead[index] = (item, self.begin(item))


class OpenObject(object):
    """The object whose events are being posted, which a call may stop inside (the next
    call goes on there): its key, its events still to come (DECODED() gives them), and the
    response they come from. Fetched whole, it is decoded as its events are posted: that
    takes no wait, and each step of it is bounded (an event by MAX_EVENT_BYTES, the whole
    by BUDGET, a run of empty lines skipped at once)."""

    def __init__(self, key, response, decoded, budget):
        self.key, self.response, self.budget = key, response, budget
        self.events = decoded()
        self.deadline = None  # the Deadline of the call posting its events
        self.warned = False  # whether a warning named what NXLog could not take in it

    def close(self):
        self.budget.stop()
        self.response["Body"].close()


class _Failed(object):
    """What stopped a StreamedObject's decoding: raised again where read_data reaches it."""

    def __init__(self, exc):
        self.exc = exc


_END = object()


class StreamedObject(OpenObject):
    """An object too large to fetch whole: a thread of its own decodes it as its body
    streams, STREAMED_AHEAD chunks ahead of read_data at most (a chunk: STREAMED_CHUNK
    events, or fewer decoded from CHUNK_BYTES as BUDGET counts them), so that a slow S3
    holds that thread, not NXLog, and memory stays bounded. Its events raise TimeUp when
    none came by the call's deadline (the next call goes on there); an error comes where it
    happened, after the events before it."""

    def __init__(self, key, response, decoded, budget):
        OpenObject.__init__(self, key, response, lambda: self, budget)
        self.chunk = iter(())  # the events handed over and not posted yet
        self.ended = False
        self.queue = queue.Queue(STREAMED_AHEAD)
        self.stopped = threading.Event()
        threading.Thread(target=self._decode, args=(decoded,), daemon=True,
                         name="%s decoder" % SCRIPT).start()

    def _decode(self, decoded):
        chunk, chunk_end = [], CHUNK_BYTES
        try:
            for fields in decoded():
                chunk.append(fields)
                if len(chunk) == STREAMED_CHUNK or self.budget.decoded >= chunk_end:
                    if not self._put(chunk):
                        return
                    chunk, chunk_end = [], self.budget.decoded + CHUNK_BYTES
            if self._put(chunk):
                self._put(_END)
        except BaseException as exc:  # handed over after the events before it, to be
            if self._put(chunk):        # raised in read_data
                self._put(_Failed(exc))

    def _put(self, value):
        """Hands VALUE over once there is room; False if the object was closed meanwhile."""
        while not self.stopped.is_set():
            try:
                self.queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        return self

    def __next__(self):
        """The next event decoded; TimeUp if none came by the deadline (it keeps its place:
        no event is lost), StopIteration at the end."""
        while True:
            for fields in self.chunk:
                return fields
            if self.ended:
                raise StopIteration
            try:
                value = self.queue.get(timeout=self.deadline.left())
            except queue.Empty:
                raise TimeUp() from None
            if isinstance(value, _Failed):
                raise value.exc
            self.ended = value is _END
            self.chunk = iter(() if self.ended else value)

    def close(self):
        self.stopped.set()
        OpenObject.close(self)
