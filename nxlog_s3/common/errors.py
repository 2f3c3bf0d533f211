"""One classification of what goes wrong, for every part and every command.

An exception is one of five kinds:
- MISSING: S3 says there is no such object or bucket (404, NoSuchKey, NoSuchBucket);
- DENIED: S3 will not let these credentials do it, or there are none (AccessDenied, ...);
- PERMANENT: a request S3 will refuse until someone changes a setting (InvalidBucketName, a
  KMS key that does not exist);
- UNDECODABLE: an object's bytes are not what its metadata or key says;
- TRANSIENT: anything else from S3 or the network (5xx, throttling, timeouts), which may pass.
"""

import zlib

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from nxlog_s3.common.optional import zstandard

MISSING, DENIED, PERMANENT, UNDECODABLE, TRANSIENT = (
    "missing", "denied", "permanent", "undecodable", "transient")
NEEDS_FIXING = (MISSING, DENIED, PERMANENT)  # kinds no retry mends: a person must act
KIND_OF_CODE = dict(
    [(code, MISSING) for code in ("404", "NoSuchKey", "NoSuchBucket")]
    + [(code, DENIED) for code in ("403", "AccessDenied", "InvalidAccessKeyId",
                                   "AllAccessDisabled", "SignatureDoesNotMatch",
                                   "NoCredentialsError")]
    + [(code, PERMANENT) for code in ("InvalidBucketName", "KMS.NotFoundException")])
# What decompressing a body raises when its bytes are not what they claim to be.
DECODE_ERRORS = (OSError, EOFError, zlib.error) + ((zstandard.ZstdError,) if zstandard else ())
NO_CREDENTIALS = ("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                  "AWS_SECRET_ACCESS_KEY, for the user NXLog runs as, or give the host an "
                  "instance role")


class UndecodableObject(ValueError):
    """An object whose bytes are not what its metadata or key says: it is set aside."""


def is_s3_error(exc):
    """Whether EXC came from S3 or the network (botocore's; some are OSErrors too)."""
    return isinstance(exc, (BotoCoreError, ClientError))


def error_code(exc):
    """S3's error code (NoSuchKey, SlowDown, 503), else the exception's type name: what log
    lines and metrics count problems by."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return type(exc).__name__


def kind_of_code(code):
    """The kind (above) of an S3 error CODE that may pass (TRANSIENT) or not."""
    return KIND_OF_CODE.get(code, TRANSIENT)


def kind_of(exc):
    """The kind (above) of EXC; None for what is neither S3's nor an object's (a bug)."""
    if isinstance(exc, UndecodableObject):
        return UNDECODABLE
    if is_s3_error(exc):
        return kind_of_code(error_code(exc))
    if isinstance(exc, DECODE_ERRORS):
        return UNDECODABLE
    return None


def error_text(exc):
    """EXC as a log line says it: the credentials chain spelt out when there is none."""
    return NO_CREDENTIALS if isinstance(exc, NoCredentialsError) else str(exc)


def object_failure(exc):
    """What went wrong with one object, for the log, `status`, `audit` and `replay`."""
    kind = kind_of(exc)
    if kind == MISSING:
        return "S3 listed it, then answered 404 Not Found (deleted meanwhile, by a lifecycle " \
            "rule, a person or another reader?)"
    if is_s3_error(exc):
        return "S3 or the network failed: %s" % error_text(exc)
    if isinstance(exc, UndecodableObject):
        return str(exc)
    if kind == UNDECODABLE:
        return "cannot decompress it: %s" % exc
    return "%s%s" % (type(exc).__name__, ": %s" % exc if str(exc) else "")
