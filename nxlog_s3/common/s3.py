"""The S3 client, and the start-up check of the bucket."""

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from nxlog_s3.common.errors import MISSING, NO_CREDENTIALS, kind_of
from nxlog_s3.common.runtime import SCRIPT
from nxlog_s3.common.settings import ConfigError


def new_client(settings, connections, attempts=None, timeout_cap=None, service="s3"):
    """An S3 client (or SERVICE's) from the standard AWS chain, with botocore's retries and
    timeouts and a connection pool for CONNECTIONS threads. Thread-safe: a script's threads
    share one."""
    cap = timeout_cap or max(settings.CONNECT_TIMEOUT, settings.READ_TIMEOUT)
    config = Config(retries={"mode": settings.RETRY_MODE,
                             "total_max_attempts": attempts or settings.RETRY_ATTEMPTS},
                    connect_timeout=min(settings.CONNECT_TIMEOUT, cap),
                    read_timeout=min(settings.READ_TIMEOUT, cap),
                    max_pool_connections=max(10, connections))
    return boto3.session.Session().client(service, config=config,
                                          verify=None if settings.TLS_VERIFY else False)


def check_bucket(settings, client, log):
    """At start, one request. A bucket that does not exist can never work: ConfigError.
    What may pass by itself (no credentials yet at boot, S3 not answering) is logged, and
    left to the uploads or polls, which retry."""
    if not settings.TLS_VERIFY:
        log.warning("TLS_VERIFY is off: whoever sits between this host and S3 can read and "
                    "change what is sent")
    try:
        client.head_bucket(Bucket=settings.BUCKET, **settings.owner())
    except NoCredentialsError:
        log.warning(NO_CREDENTIALS + "; trying again until there are")
    except ClientError as exc:
        if kind_of(exc) == MISSING:
            raise ConfigError("%s: the bucket %s does not exist (BUCKET, or NXLOG_S3_BUCKET); "
                              "this script never creates one" % (SCRIPT, settings.BUCKET)) from None
    except BotoCoreError as exc:
        log.warning("S3 does not answer yet (%s); trying again until it does" % exc)


def probe_client(settings):
    """The client of the start-up check: one quick attempt, so that NXLog's start waits on
    S3 for seconds at most."""
    return new_client(settings, 1, attempts=1, timeout_cap=5)


def quoted(bucket, key):
    """KEY's address as log lines show it: quoted, with control characters escaped, so that a
    key cannot forge a log line."""
    return repr("s3://%s/%s" % (bucket, key))

