"""NXLog im_python input: reads back the events that s3_write.py stored in S3.

    <Input s3>
        Module      im_python
        PythonCode  /etc/nxlog/s3_read.py
    </Input>

NXLog calls read_data(module) (`Call read_event` works too, for old configurations). Each
call lists the objects of each SERVER in BUCKET from a LOOKBACK window behind the newest one
read, posts the events of those it has not read yet in key order (objects of one second by
their counter as a number: .2 before .10), records each object in the CHECKPOINT file, and
schedules the next call: at once while more is waiting, after POLL_INTERVAL seconds once it
has caught up. Objects that land late (a retried upload, a second writer, a clock behind) are
read: inside the window at the next poll, up to LATE_HORIZON behind by a re-listing made
every LATE_INTERVAL; a sweep of the whole prefix every SWEEP_INTERVAL names in a warning what
landed further behind. Keys off the scheme or with impossible times are reported and passed;
a key from the future is read but moves no window. No object is passed over in silence. An
object that cannot be read is tried again on later polls, MAX_ATTEMPTS times, then set aside
and reported; the objects after it are read meanwhile.

The checkpoint (CHECKPOINT, and CHECKPOINT.late for the horizon) is written atomically after
each object, so a restart, even after a crash, resumes where the reader stopped (an event may
be posted twice, never lost). Delete both to read everything again. The old scripts'
lastkey.log is taken up where it stands.

Settings are below; each one can also be set without editing this file, through the
environment variable NXLOG_S3_<NAME>. A link to this file named s3_read_web.py is the
instance web: NXLOG_S3_WEB_<NAME> sets its settings first, then NXLOG_S3_<NAME>, then this
file; its checkpoint is lastkey_web.log. Credentials, region and endpoint come from the
standard AWS chain (AWS_PROFILE, AWS_ENDPOINT_URL, ~/.aws/config, instance roles), never from
this file.

Run as a command, outside NXLog: python3 s3_read.py check (would NXLog start?), status
(where the reader is, how far behind, what it set aside), audit (is the archive complete?) or
replay (the events of a time range); --help says more.
"""

# ---- Settings ----------------------------------------------------------------------------
BUCKET = "my-log-archive"   # the bucket s3_write.py writes to; never created or changed here
SERVER = ""                 # whose events: a name, names with commas (web01,web02), or * for
                            # every server in the bucket; empty: this machine's host name
CHECKPOINT = ""             # where the reader keeps its place; empty: lastkey.log (for the
                            # instance web, lastkey_web.log); relative: in NXLog's SpoolDir
POLL_INTERVAL = 10          # seconds between two looks at the bucket once caught up
LOOKBACK = 300              # seconds of key time behind the newest object read in which
                            # objects that land late are read at the next poll
LATE_HORIZON = 86400        # seconds of key time behind the newest object read in which
                            # objects that land later still are read, by a re-listing...
LATE_INTERVAL = 900         # ...made every this many seconds (0: whenever caught up)
SWEEP_INTERVAL = 86400      # seconds between two listings of a server's whole prefix, which
                            # report what landed behind LATE_HORIZON or off the key scheme
                            # since the last one; 0: never (such objects then go unseen)
MAX_AHEAD = 300             # seconds a key may lie ahead of this host's clock and still count
                            # as the newest read (a key further ahead is read, but moves
                            # nothing: a stray key from the future cannot blind the reader)
KEY_TIME = "utc"            # the time in the keys, as the writers' KEY_TIME: utc or local
START_AT = "beginning"      # with no checkpoint yet: beginning (everything), or now
MAXKEYS = 1000              # keys per list request (S3 gives at most 1000)
MAX_OBJECTS_PER_CALL = 100  # one read_data call posts the events of this many objects...
MAX_SECONDS_PER_CALL = 1.0  # ...or works this long (even inside a large object), then lets
                            # NXLog have its turn and is called again at once
FETCH_THREADS = 4           # objects fetched at the same time (events are still posted in
                            # key order)
MAX_ATTEMPTS = 5            # polls that try an object that cannot be read before it is set
                            # aside (reported, and left in the bucket)
ALLOW_PICKLE = False        # read pickled objects: only for a bucket whose writers you trust
RAW_LINES = False           # objects without s3_write.py's metadata: one event per line
                            # (stores filled by other tools) instead of one per object
MAX_EVENT_BYTES = 16777216  # an event (a line, or a whole object) larger than this, once
                            # decompressed, makes its object undecodable: a decompression
                            # bomb cannot exhaust memory (reading takes some 4 times the
                            # largest event); 0: no limit (MAX_EXPANSION's too)
MAX_EXPANSION = 1000        # an object that decompresses to more than this many times its
                            # size (and to more than MAX_EVENT_BYTES) is undecodable too
AFTER_READ = "keep"         # keep, delete, or move (to MOVE_PREFIX) each object once read
MOVE_PREFIX = ""            # with AFTER_READ=move: where objects go, e.g. read/
RETRY_MODE = "standard"     # botocore retry mode: standard or adaptive
RETRY_ATTEMPTS = 5          # attempts per S3 request, the first one included
TLS_VERIFY = True           # check the endpoint's TLS certificate (AWS_CA_BUNDLE names a
                            # private CA); false only for a test endpoint, never in production
CONNECT_TIMEOUT = 10        # seconds
READ_TIMEOUT = 60           # seconds
METRICS_FILE = ""           # Prometheus metrics for node_exporter's textfile collector,
                            # rewritten every 5 s, e.g. /var/lib/node_exporter/textfile/
                            # nxlog_s3_read.prom; empty: none
COORDINATION = "none"       # none: this reader alone reads SERVER, its place kept in
                            # CHECKPOINT; s3: readers on any hosts with the same BUCKET and
                            # SERVER share the servers, each read by one reader at a time,
                            # their positions and leases kept in the bucket under _nxlog-s3/
                            # (the store must honor conditional writes: check says)
READER_NAME = ""            # with COORDINATION=s3: this reader's name in the leases; empty:
                            # this machine's host name
LEASE_SECONDS = 30          # with COORDINATION=s3: a reader gone (no beat for this long) has
                            # its servers taken over by the others
NOTIFY_QUEUE = ""           # an SQS queue's URL that receives the bucket's S3 event
                            # notifications: a poll lists only the servers they name; empty:
                            # every poll lists every server
FULL_POLL_INTERVAL = 600    # with NOTIFY_QUEUE: seconds between two listings of a server
                            # with no news, the backstop for a message lost
# ---- End of settings ---------------------------------------------------------------------
