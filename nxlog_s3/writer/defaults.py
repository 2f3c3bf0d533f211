"""NXLog om_python output: ships events to Amazon S3 or any S3-compatible store, losing none.

    <Output s3>
        Module      om_python
        PythonCode  /etc/nxlog/s3_write.py
    </Output>

NXLog calls write_data(event) for every event. Before it returns, the event is on disk in
SPOOL_DIR (unless that disk is full: see Spool.append); background threads upload what the
spool holds and delete it only once S3 has confirmed it. No call holds NXLog for more than
about a second, so that it can stop at any moment. NXLog gives an output no shutdown hook
and drops an event whose write_data raises, so the spool is what keeps events across
restarts, crashes and S3 outages: at every start the script uploads what an earlier run
left there, first.

Objects are named SERVER/YYYY-MM-DD/HH.MM.SS.N after their (first) event's EventReceivedTime
(UTC unless KEY_TIME is local; this host's clock for a time it cannot read or one more than
MAX_AHEAD ahead of it; never before a key it used already), N counting the objects of that
second from 1, and for a batch a suffix that names its content (.jsonl.gz, .parquet;
KEY_SUFFIX). By default each event is one object (as the old scripts did); BATCH_EVENTS above
1 stores many events per object as gzip-compressed JSON lines (or Parquet), thousands of
times cheaper. Datetime fields are stored with their zone. Every upload is conditional
(If-None-Match: *): an object is never overwritten, and an upload retried after it landed is
recognised by its batch id and not stored twice.

Settings are below; each one can also be set without editing this file, through the
environment variable NXLOG_S3_<NAME> (NXLOG_S3_BUCKET, NXLOG_S3_BATCH_EVENTS, ...).
A link to this file named s3_write_web.py is the instance web: NXLOG_S3_WEB_<NAME> sets its
settings first, then NXLOG_S3_<NAME>, then this file; its spool is s3_write_web.spool. One
file to upgrade, however many <Output> blocks use it. Credentials, region and endpoint come
from the standard AWS chain (AWS_PROFILE, AWS_ENDPOINT_URL, ~/.aws/config, instance roles),
never from this file. Python 3.8+, boto3.

Run as a command, outside NXLog: python3 s3_write.py check (would NXLog start?) or status
(what the spool holds); --help says more.
"""

# ---- Settings ----------------------------------------------------------------------------
BUCKET = "my-log-archive"     # an existing bucket; this script never creates or changes it
SERVER = ""                   # key prefix: this server's or service's name; empty: host name
KEY_TIME = "utc"              # time in the key: utc, or local (as the old scripts did)
MAX_AHEAD = 300               # seconds an EventReceivedTime may lie ahead of this host's clock
                              # and still give the key its time (further: the clock does)
BATCH_EVENTS = 1              # events per object: 1 is one object per event; batches: 10000+
BATCH_BYTES = 8388608         # a batch closes at this many bytes (uncompressed)...
BATCH_AGE = 60                # ...or this many seconds after its first event, whichever first
FORMAT = "raw"                # one event per object: raw (raw_event as UTF-8), json (all
                              # fields) or pickle (old consumers only); batches: JSON lines,
                              # or parquet (needs the pyarrow package)
COMPRESSION = "auto"          # none, gzip, zstd (needs the zstandard package); auto: none for
                              # one event per object, gzip for batches
PARQUET_COMPRESSION = "zstd"  # inside Parquet batches: zstd, snappy, gzip or none
KEY_SUFFIX = "auto"           # a suffix naming the content (.jsonl.gz, .parquet, .txt): auto
                              # for batches only, always, or never (the old bare keys)
SPOOL_DIR = ""                # events wait here until S3 has them; empty: s3_write.spool
                              # (s3_write_web.spool for the instance web); relative: in
                              # NXLog's SpoolDir
SPOOL_MAX_BYTES = 1073741824  # the spool's limit; when full...
SPOOL_FULL = "block"          # ...block: write_data waits (NXLog holds events back), or drop:
                              # write_data refuses the event with an error that counts them
FSYNC = "batch"               # event: fsync each event; batch: each batch; os: leave it to the OS
UPLOAD_THREADS = 4            # objects uploaded at the same time (their keys are given in order)
STORAGE_CLASS = ""            # e.g. STANDARD_IA, GLACIER_IR; empty: the bucket's default
SSE = ""                      # server-side encryption: AES256 or aws:kms; empty: the default
SSE_KMS_KEY_ID = ""           # with SSE=aws:kms: the KMS key; empty: the AWS managed key
EXPECTED_BUCKET_OWNER = ""    # an account id: refuse to write to a bucket someone else owns
RETRY_MODE = "standard"       # botocore retry mode: standard or adaptive
RETRY_ATTEMPTS = 5            # attempts per S3 request, the first one included
TLS_VERIFY = True             # check the endpoint's TLS certificate (AWS_CA_BUNDLE names a
                              # private CA); false only for a test endpoint, never in production
CONNECT_TIMEOUT = 10          # seconds
READ_TIMEOUT = 60             # seconds
METRICS_FILE = ""             # Prometheus metrics for node_exporter's textfile collector,
                              # rewritten every 5 s, e.g. /var/lib/node_exporter/textfile/
                              # nxlog_s3_write.prom; empty: none
# ---- End of settings ---------------------------------------------------------------------
