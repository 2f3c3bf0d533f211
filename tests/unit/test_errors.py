"""common/errors.py: one classification of what goes wrong, for every part."""

import zlib

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from nxlog_s3.common import errors


def client_error(code):
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")


@pytest.mark.parametrize("code, kind", [
    ("NoSuchKey", errors.MISSING), ("404", errors.MISSING), ("NoSuchBucket", errors.MISSING),
    ("AccessDenied", errors.DENIED), ("InvalidAccessKeyId", errors.DENIED),
    ("SignatureDoesNotMatch", errors.DENIED), ("InvalidBucketName", errors.PERMANENT),
    ("SlowDown", errors.TRANSIENT), ("503", errors.TRANSIENT),
    ("InternalError", errors.TRANSIENT)])
def test_an_s3_error_is_classed_by_its_code(code, kind):
    assert errors.kind_of(client_error(code)) == kind
    assert errors.error_code(client_error(code)) == code


def test_no_credentials_is_denied_and_says_where_credentials_come_from():
    exc = NoCredentialsError()
    assert errors.kind_of(exc) == errors.DENIED
    assert "AWS_PROFILE" in errors.error_text(exc)


def test_a_network_failure_is_transient_and_named_by_its_type():
    exc = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    assert errors.kind_of(exc) == errors.TRANSIENT
    assert errors.error_code(exc) == "EndpointConnectionError"


@pytest.mark.parametrize("exc", [errors.UndecodableObject("bad"), zlib.error("bad"),
                                 EOFError("cut short")])
def test_bytes_that_are_not_what_they_claim_are_undecodable(exc):
    assert errors.kind_of(exc) == errors.UNDECODABLE


def test_a_bug_is_no_kind_at_all():
    assert errors.kind_of(KeyError("x")) is None


def test_only_what_no_retry_mends_needs_fixing():
    assert {errors.MISSING, errors.DENIED, errors.PERMANENT} == set(errors.NEEDS_FIXING)
    assert errors.kind_of_code("SlowDown") not in errors.NEEDS_FIXING


@pytest.mark.parametrize("exc, says", [
    (client_error("NoSuchKey"), "404 Not Found"),
    (client_error("SlowDown"), "S3 or the network failed"),
    (errors.UndecodableObject("invalid JSON in line 3"), "invalid JSON in line 3"),
    (zlib.error("incorrect header check"), "cannot decompress it: incorrect header check"),
    (RecursionError("too deep"), "RecursionError: too deep")])
def test_an_objects_failure_is_told_in_words(exc, says):
    assert says in errors.object_failure(exc)
