"""Security: no unpickling unless asked, files for their owner only, no secret in any log
line, TLS verification on unless turned off, keys that stay under SERVER/."""

import datetime
import ipaddress
import os
import pickle
import re
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faults import FaultProxy
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from helpers import BUCKET, all_objects, drain, wait_for
from nxlog_stub import api


class Planted(object):
    """Runs os.system-like code when unpickled: it must never run unless ALLOW_PICKLE."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_from_the_bucket_is_never_unpickled_unless_allowed(s3, settings, load,
                                                                    tmp_path):
    marker = str(tmp_path / "unpickled")
    for number, metadata in enumerate(({}, {"nxlog-s3-format": "pickle"}), 1):
        s3.put_object(Bucket=BUCKET, Key="web01/2026-03-01/10.00.00.%d" % number,
                      Body=pickle.dumps({"raw_event": Planted(marker)}, protocol=2),
                      Metadata=metadata)
    settings(MAX_ATTEMPTS=1)
    reader = load("s3_read")
    delay, posted = api.call_read_data(reader.read_data, api.input_module())
    assert posted == [] and delay == reader.instance.settings.POLL_INTERVAL
    assert not os.path.exists(marker)
    assert len([message for message in api.logged("ERROR")
                if "it is a pickle, and unpickling runs code" in message]) == 2


def test_every_file_and_folder_the_scripts_write_is_their_owners_only(s3, settings, load,
                                                                      tmp_path):
    settings(BATCH_EVENTS=3, SPOOL_DIR=tmp_path / "spool", CHECKPOINT=tmp_path / "state" / "ck")
    writer = load("s3_write")
    for number in range(10):  # three batches closed, one open
        api.call_write_data(writer.write_data, api.new_event(api.output_module(), {
            "raw_event": "e%d" % number}))
    reader = load("s3_read")
    wait_for(lambda: len(all_objects(s3)) == 3, what="three batches in S3")
    api.call_read_data(reader.read_data, api.input_module())
    writer.stop()
    for folder in (tmp_path / "spool", tmp_path / "state"):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        names = os.listdir(folder)
        assert names
        for name in names:
            assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600, name


# ---- No secret in a log line ----

SECRET = "PlAnTeDsEcReT/0123456789abcdefghijklmnopqrst"
TOKEN = "PlAnTeDtOkEn" + "Z" * 40
ACCESS_KEY = "AKIAPLANTEDKEY000000"


def test_no_credential_appears_in_any_log_line_whatever_fails(moto_server, settings, load,
                                                              build, monkeypatch):
    """Every kind of failure, with planted credentials; then no line may hold them."""
    bucket = moto_server.new_bucket("nxlog-secrets")
    port = int(moto_server.url.rsplit(":", 1)[1])
    with FaultProxy(("127.0.0.1", port), faults=1.0, seed=3, stall=1.0) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
        settings(BUCKET=bucket, BATCH_EVENTS=2, BATCH_AGE=0.1, RETRY_ATTEMPTS=1,
                 READ_TIMEOUT=0.5, CONNECT_TIMEOUT=0.5, POLL_INTERVAL=0.01, MAX_ATTEMPTS=1)
        scripts = load("s3_write"), load("s3_read")
        # every failure logged, not one a minute:
        writer, reader = (build(script, log=script.Log(script.Clock(), every=0))
                          for script in scripts)
        for number in range(4):
            api.call_write_data(writer.write_data, api.new_event(api.output_module(), {
                "raw_event": "e%d" % number}))
        for _ in range(20):
            api.call_read_data(reader.read_data, api.input_module())
        wait_for(lambda: len(api.logged("WARNING")) >= 4, what="failed uploads logged")
        assert sum(proxy.counts[kind] for kind in ("503", "500", "reset", "stall")) > 10
    lines = api.logged()
    assert any("cannot store" in line for line in lines)
    assert any("cannot read" in line for line in lines)
    for line in lines:
        for planted in (SECRET, TOKEN, ACCESS_KEY, SECRET[:16], TOKEN[:16]):
            assert planted not in line


# ---- TLS ----

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return str(folder / "cert.pem"), str(folder / "key.pem")


@pytest.fixture
def https_endpoint(moto_server, certificate, settings, monkeypatch):
    """moto server behind an HTTPS proxy whose certificate no default CA vouches for."""
    bucket = moto_server.new_bucket("nxlog-tls-%d" % os.getpid())
    port = int(moto_server.url.rsplit(":", 1)[1])
    with FaultProxy(("127.0.0.1", port), tls=certificate) as proxy:
        for name, value in moto_server.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        settings(BUCKET=bucket, RETRY_ATTEMPTS=1, POLL_INTERVAL=5)
        yield moto_server.client(), bucket


def ship_one(writer):
    assert api.call_write_data(writer.write_data, api.new_event(api.output_module(), {
        "raw_event": "over TLS"}))


def test_an_endpoint_whose_certificate_is_not_trusted_is_refused(https_endpoint, load):
    client, bucket = https_endpoint
    writer = load("s3_write")
    ship_one(writer)
    wait_for(lambda: api.logged("WARNING"), what="a failed upload")
    assert "certificate verify failed" in api.logged("WARNING")[0]
    assert writer.instance.spool.pending() == 1  # kept, not sent in the clear nor dropped
    delay, _ = api.call_read_data(load("s3_read").read_data, api.input_module())
    assert "certificate verify failed" in api.logged("ERROR")[0]
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


def test_a_private_ca_named_by_aws_ca_bundle_is_trusted_with_verification_on(
        https_endpoint, certificate, load, monkeypatch):
    client, bucket = https_endpoint
    monkeypatch.setenv("AWS_CA_BUNDLE", certificate[0])
    writer = load("s3_write")
    ship_one(writer)
    drain(writer)
    _, posted = api.call_read_data(load("s3_read").read_data, api.input_module())
    assert [event.get_field("raw_event") for event in posted] == ["over TLS"]
    assert api.logged("WARNING") == api.logged("ERROR") == []


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verify_false_turns_verification_off_and_says_so_at_start(https_endpoint, settings,
                                                                      load):
    settings(TLS_VERIFY="false")
    writer = load("s3_write")
    ship_one(writer)
    drain(writer)
    assert "s3_write: TLS_VERIFY is off" in api.logged("WARNING")[0]


# ---- Keys stay under SERVER/ ----

KEY = re.compile(r"^web01/[0-9]{4}-[0-9]{2}-[0-9]{2}/[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.[0-9]+$")


def test_keys_built_from_any_event_time_stay_in_the_scheme_under_server(s3, settings, load):
    writer = load("s3_write")
    times = st.one_of(st.text(), st.integers(), st.booleans(), st.none(),
                      st.binary().map(memoryview),
                      st.datetimes().map(lambda when: when.strftime("%Y-%m-%d %H:%M:%S")))

    @hypothesis_settings(max_examples=100, deadline=None, database=None)
    @given(times)
    def check(received):
        fields = {"raw_event": "x"}
        if received is not None:
            fields["EventReceivedTime"] = received
        assert api.call_write_data(writer.write_data,
                                   api.new_event(api.output_module(), fields))
    check()
    drain(writer)
    keys = list(all_objects(s3))
    assert len(keys) >= 100
    assert all(KEY.match(key) for key in keys), [key for key in keys if not KEY.match(key)]
