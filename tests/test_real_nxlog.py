"""Both conf/ files as they are (their defines fitted), and s3_write.py and s3_read.py, under
a real NXLog CE 3.1.15 (tests/real_nxlog.py) against moto server on 127.0.0.1: a round trip,
a start refused for a bad setting, a stop while the spool is full that loses nothing, stops
that end the scripts' threads before NXLog clears their interpreter; and a hostile bucket,
object by object (tests/hostile.py) and generated (hypothesis), that NXLog survives while the
reader reads on and names what it sets aside."""

import datetime
import functools
import gzip
import itertools
import json
import os
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from helpers import ROOT, NotificationQueue, free_port, instance_link, version
from hostile import (
    HOSTILE,
    JSON_LINES,
    ODD_PARQUET_KINDS,
    PARQUET,
    deeply_nested,
    empty_lines_bomb,
    json_lines,
    odd_parquet,
    parquet_date_overflow,
    parquet_dictionary_bomb,
    parquet_huge_event,
    truncated_gzip,
)
from real_nxlog import conf_text, fitted_conf

_numbers = itertools.count(1)


@pytest.fixture
def bucket(moto_server):
    return moto_server.new_bucket("nxlog-real-%d-%d" % (os.getpid(), next(_numbers)))


def keys_in(endpoint, bucket):
    pages = endpoint.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", ())]


def lines_of(path):
    """PATH's lines, split at newlines only: an event's text may hold what splitlines()
    also splits at (U+0085, U+2028), and NXLog writes it as it is."""
    try:
        with open(path, encoding="utf-8") as handle:
            return [line for line in handle.read().split("\n") if line]
    except FileNotFoundError:
        return []


def nxlog_env(endpoint_env, **settings):
    return dict(endpoint_env, **{"NXLOG_S3_" + name: str(value)
                                 for name, value in settings.items()})


def start_conf(nxlog_process, name, folder, env, **defines):
    """conf/NAME under a real NXLog, its ROOT (SpoolDir, log) in FOLDER, scripts from the
    project's top."""
    os.makedirs(str(folder), exist_ok=True)
    conf = fitted_conf(name, folder, ROOT=folder, SCRIPTDIR=ROOT, **defines)
    return nxlog_process(conf, os.path.join(str(folder), "nxlog.log"), env)


def test_both_conf_files_move_every_line_once_and_in_order(moto_server, bucket, tmp_path,
                                                            nxlog_process):
    lines = ["%03d GET /index.html 200 caf\u00e9" % number for number in range(120)]
    (tmp_path / "app.log").write_text("".join(line + "\n" for line in lines))
    env = nxlog_env(moto_server.env, BUCKET=bucket, SERVER="web01", POLL_INTERVAL=0.2)
    writer = start_conf(nxlog_process, "s3-write.conf", tmp_path / "write", env,
                        LOGFILE=tmp_path / "app.log")
    writer.wait_for(lambda: len(keys_in(moto_server, bucket)) == len(lines),
                    what="an object per line")
    assert writer.stop() == 0
    reader = start_conf(nxlog_process, "s3-read.conf", tmp_path / "read", env,
                        OUTFILE=tmp_path / "out.log")
    reader.wait_for(lambda: len(lines_of(tmp_path / "out.log")) >= len(lines),
                    what="every line read back")
    assert reader.stop() == 0
    assert lines_of(tmp_path / "out.log") == lines
    assert " ERROR " not in writer.log() + reader.log()
    # NXLog's stop lets the scripts stop: the writer says what its spool keeps, the reader
    # where the next start goes on
    assert "INFO s3_write: stops with an empty spool: S3 holds every event written" in \
        writer.log()
    assert "INFO s3_read: stops; the next start goes on from the checkpoint %s (web01 read " \
        "up to " % (tmp_path / "read" / "lastkey.log") in reader.log()


def test_a_stop_with_a_batch_being_filled_says_so_and_the_next_start_stores_it(
        moto_server, bucket, tmp_path, nxlog_process):
    (tmp_path / "app.log").write_text("".join("line %d\n" % number for number in range(10)))
    env = nxlog_env(moto_server.env, BUCKET=bucket, SERVER="web01", BATCH_EVENTS=1000,
                    BATCH_AGE=3600)
    first = start_conf(nxlog_process, "s3-write.conf", tmp_path, env,
                       LOGFILE=tmp_path / "app.log")
    first.wait_for(lambda: lines_in_open_batch(tmp_path / "s3_write.spool") == 10,
                   what="the ten lines in the batch being filled")
    assert first.stop() == 0
    assert "INFO s3_write: stops with 10 events in the spool %s, stored after the next start: " \
        "10 in the batch being filled, which closes at 1000 events, 8388608 bytes or 3600 s " \
        "after its first event" % (tmp_path / "s3_write.spool") in first.log()
    assert keys_in(moto_server, bucket) == []
    again = start_conf(nxlog_process, "s3-write.conf", tmp_path, env,
                       LOGFILE=tmp_path / "app.log")
    again.wait_for(lambda: len(keys_in(moto_server, bucket)) == 1, what="the batch stored")
    assert again.stop() == 0
    [key] = keys_in(moto_server, bucket)
    assert moto_server.client().head_object(Bucket=bucket, Key=key)["Metadata"][
        "nxlog-s3-events"] == "10"


def lines_in_open_batch(spool):
    """The events the spool's batch being filled holds (a JSON line each), 0 without one."""
    try:
        names = [name for name in os.listdir(str(spool)) if name.endswith(".open")]
    except FileNotFoundError:
        return 0
    return sum(len(lines_of(spool / name)) for name in names)


@pytest.mark.parametrize("conf, setting", [("s3-write.conf", {"BATCH_EVENTS": "0"}),
                                           ("s3-read.conf", {"START_AT": "yesterday"})])
def test_a_bad_setting_keeps_nxlog_from_starting(moto_server, bucket, tmp_path, nxlog_process,
                                                 conf, setting):
    env = nxlog_env(moto_server.env, BUCKET=bucket, SERVER="web01", **setting)
    nxlog = start_conf(nxlog_process, conf, tmp_path, env, LOGFILE=tmp_path / "app.log") \
        if conf == "s3-write.conf" else \
        start_conf(nxlog_process, conf, tmp_path, env, OUTFILE=tmp_path / "out.log")
    assert nxlog.exited() == 78  # EX_CONFIG: NXLog refuses to start, as for a bad directive
    name = next(iter(setting))
    [line] = nxlog.log().splitlines()  # the refusal alone: NXLog logs no "started" before it
    assert " ERROR s3_" in line and name in line, nxlog.log()
    assert (tmp_path / "nxlog.pid").exists()  # left behind, as the README says...
    env = nxlog_env(moto_server.env, BUCKET=bucket, SERVER="web01")
    again = start_conf(nxlog_process, conf, tmp_path, env, LOGFILE=tmp_path / "app.log") \
        if conf == "s3-write.conf" else \
        start_conf(nxlog_process, conf, tmp_path, env, OUTFILE=tmp_path / "out.log")
    again.wait_for(lambda: "INFO nxlog-ce-" in again.log(), what="a start")
    assert again.stop() == 0  # ...and in nobody's way at the next start
    assert not (tmp_path / "nxlog.pid").exists()


def test_two_instances_of_each_script_in_one_nxlog_keep_to_their_own_servers(
        moto_server, bucket, tmp_path, nxlog_process):
    """One NXLog, four instances of one copy of each script (links): web.log and auth.log
    each go to S3 under their own SERVER, and each comes back through its own reader."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for script, name in itertools.product(("s3_write", "s3_read"), ("web", "auth")):
        instance_link(scripts, script, name)
    lines = {name: ["%s line %d" % (name, number) for number in range(30)]
             for name in ("web", "auth")}
    for name, texts in lines.items():
        (tmp_path / ("%s.log" % name)).write_text("".join(text + "\n" for text in texts))
    env = nxlog_env(moto_server.env, BUCKET=bucket, WEB_SERVER="web01", AUTH_SERVER="auth01",
                    BATCH_EVENTS=10, BATCH_AGE=0.5, POLL_INTERVAL=0.2)
    nxlog = nxlog_process(*four_instances_conf(tmp_path, scripts), env)
    nxlog.wait_for(lambda: all(lines_of(tmp_path / ("%s.out" % name)) == texts
                               for name, texts in lines.items()), what="each file read back")
    assert nxlog.stop() == 0
    assert sorted({key.split("/")[0] for key in keys_in(moto_server, bucket)}) == [
        "auth01", "web01"]
    assert " ERROR " not in nxlog.log(), nxlog.log()
    for script in ("s3_write_web", "s3_write_auth", "s3_read_web", "s3_read_auth"):
        instance = script.split("_")[-1]
        assert "INFO %s: nxlog-s3 %s started: instance %s (NXLOG_S3_%s_<NAME> first)" % (
            script, version(), instance, instance.upper()) in nxlog.log()


def four_instances_conf(folder, scripts):
    """A configuration of NAME.log -> s3_write_NAME.py and s3_read_NAME.py -> NAME.out for
    web and auth, its files in FOLDER; (its path, its log's)."""
    body = "".join("""
<Input %(name)s_file>
    Module        im_file
    File          "%(folder)s/%(name)s.log"
    SavePos       FALSE
    ReadFromLast  FALSE
</Input>
<Output %(name)s_s3>
    Module      om_python
    PythonCode  %(scripts)s/s3_write_%(name)s.py
</Output>
<Input %(name)s_s3_in>
    Module      im_python
    PythonCode  %(scripts)s/s3_read_%(name)s.py
</Input>
<Output %(name)s_out>
    Module  om_file
    File    "%(folder)s/%(name)s.out"
</Output>
<Route %(name)s_up>
    Path  %(name)s_file => %(name)s_s3
</Route>
<Route %(name)s_down>
    Path  %(name)s_s3_in => %(name)s_out
</Route>
""" % {"name": name, "scripts": scripts, "folder": folder} for name in ("web", "auth"))
    path = folder / "nxlog.conf"
    path.write_text(conf_text(folder, body))
    return path, folder / "nxlog.log"


def test_the_conf_of_two_instances_runs_under_a_real_nxlog(moto_server, bucket, tmp_path,
                                                           nxlog_process):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in ("web", "auth"):
        instance_link(scripts, "s3_write", name)
        (tmp_path / ("%s.log" % name)).write_text("%s line\n" % name)
    env = nxlog_env(moto_server.env, BUCKET=bucket, WEB_SERVER="web01", AUTH_SERVER="auth01")
    os.makedirs(str(tmp_path / "write"))
    conf = fitted_conf("s3-write-instances.conf", tmp_path / "write", ROOT=tmp_path / "write",
                       SCRIPTDIR=scripts, WEBLOG=tmp_path / "web.log",
                       AUTHLOG=tmp_path / "auth.log")
    nxlog = nxlog_process(conf, tmp_path / "write" / "nxlog.log", env)
    nxlog.wait_for(lambda: len(keys_in(moto_server, bucket)) == 2, what="both lines stored")
    assert nxlog.stop() == 0
    assert sorted(key.split("/")[0] for key in keys_in(moto_server, bucket)) == [
        "auth01", "web01"]


def test_a_stop_while_the_spool_is_full_is_prompt_and_loses_nothing(moto_server, bucket,
                                                                    tmp_path, nxlog_process):
    lines = ["line %03d %s" % (number, "x" * 60) for number in range(60)]
    (tmp_path / "app.log").write_text("".join(line + "\n" for line in lines))
    settings = dict(BUCKET=bucket, SERVER="web01", SPOOL_MAX_BYTES=1000)
    down = dict(moto_server.env, AWS_ENDPOINT_URL="http://127.0.0.1:9")  # nothing listens
    writer = start_conf(nxlog_process, "s3-write.conf", tmp_path / "write",
                        nxlog_env(down, **settings), LOGFILE=tmp_path / "app.log")
    writer.wait_for(lambda: "is full (SPOOL_MAX_BYTES=1000" in writer.log(), what="a full spool")
    assert writer.stop(timeout=15) == 0
    assert "NXLog stops: the script's threads ended" in writer.log(), writer.log()
    # each event filled a batch: write_data handed their closes to the uploader threads,
    # which S3's errors kept busy; the stop closed those still waiting
    assert spooled(tmp_path / "write" / "s3_write.spool", (".open",)) == []
    again = start_conf(nxlog_process, "s3-write.conf", tmp_path / "write",
                       nxlog_env(moto_server.env, **settings), LOGFILE=tmp_path / "app.log")
    again.wait_for(lambda: len(keys_in(moto_server, bucket)) >= len(lines),
                   what="every line stored after the restart")
    assert again.stop() == 0
    client = moto_server.client()
    stored = sorted(client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
                    for key in keys_in(moto_server, bucket))
    assert stored == lines


def resident_mb(pid):
    with open("/proc/%d/status" % pid) as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def spooled(folder, suffixes=(".open", ".data")):
    """The paths of the spool's batch files in FOLDER."""
    try:
        names = os.listdir(str(folder))
    except FileNotFoundError:
        return []
    return [os.path.join(str(folder), name) for name in names if name.endswith(suffixes)]


def spooled_bytes(folder):
    """The bytes of the spool's batch files; a batch closed between the listing and its
    size (.open renamed .data) counts 0 this time, and is counted at the next look."""
    def size(path):
        try:
            return os.path.getsize(path)
        except FileNotFoundError:
            return 0
    return sum(size(path) for path in spooled(folder))


def test_a_writer_does_not_grow_by_the_reference_nxlog_ce_keeps_to_each_event(
        moto_server, bucket, tmp_path, nxlog_process):
    """NXLog CE's om_python keeps a reference to each event's capsule, whatever the script:
    48 bytes an event, 14 MB over the last 300,000 of these. s3_write.py gives it back
    (common/host.py): NXLog grows by less than 5 MB while they are spooled (S3 down: no
    upload moves memory)."""
    (tmp_path / "app.log").write_text(("x" * 100 + "\n") * 400000)
    down = dict(moto_server.env, AWS_ENDPOINT_URL="http://127.0.0.1:9")  # nothing listens
    spool = tmp_path / "spool"
    writer = start_conf(nxlog_process, "s3-write.conf", tmp_path / "write", nxlog_env(
        down, BUCKET=bucket, SERVER="web01", FORMAT="json", BATCH_EVENTS=10000,
        SPOOL_DIR=spool), LOGFILE=tmp_path / "app.log")
    writer.wait_for(lambda: spooled(spool, ".data"), timeout=120, what="a batch closed")
    event_bytes = os.path.getsize(spooled(spool, ".data")[0]) / 10000
    writer.wait_for(lambda: spooled_bytes(spool) >= 100000 * event_bytes, timeout=120,
                    what="100,000 events spooled")
    before = resident_mb(writer.process.pid)
    writer.wait_for(lambda: spooled_bytes(spool) >= 400000 * event_bytes, timeout=120,
                    what="400,000 events spooled")
    grown = resident_mb(writer.process.pid) - before
    assert writer.stop() == 0
    assert grown < 5, "NXLog grew by %.1f MB over 300,000 events" % grown


def test_a_writer_of_parquet_batches_starts_and_stores_them(moto_server, bucket, tmp_path,
                                                           nxlog_process):
    """pyarrow's import, made in NXLog's own thread, waited for good in PyGILState_Ensure
    (the main interpreter's state, not the script's): NXLog hung at its start with
    FORMAT=parquet. common/optional.py imports it in a thread of the script's own."""
    import pyarrow.parquet
    lines = ["line %03d" % number for number in range(60)]
    (tmp_path / "app.log").write_text("".join(line + "\n" for line in lines))
    writer = start_conf(nxlog_process, "s3-write.conf", tmp_path / "write",
                        nxlog_env(moto_server.env, BUCKET=bucket, SERVER="web01",
                                  FORMAT="parquet", BATCH_EVENTS=1000, BATCH_AGE=1),
                        LOGFILE=tmp_path / "app.log")
    writer.wait_for(lambda: keys_in(moto_server, bucket), timeout=30, what="a Parquet batch")
    assert writer.stop() == 0
    client = moto_server.client()
    stored = []
    for key in keys_in(moto_server, bucket):
        assert key.endswith(".parquet")
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        stored += pyarrow.parquet.read_table(pyarrow.BufferReader(body)).column(
            "raw_event").to_pylist()
    assert sorted(stored) == lines


WRAPPING_WRITER = """<Input file>
    Module          im_file
    File            "%(log)s"
    SavePos         FALSE
    ReadFromLast    FALSE
</Input>
<Output s3>
    Module      om_python
    PythonCode  %(root)s/tests/programs/wrapping_writer.py
</Output>
<Route wrapped>
    Path  file => s3
</Route>
"""


def test_a_script_of_the_users_that_calls_s3_writes_write_data_runs_and_stops_cleanly(
        moto_server, bucket, tmp_path, nxlog_process):
    """tests/programs/wrapping_writer.py holds s3_write.py's write_data and calls it from
    Python: nothing of common/host.py's may take that for NXLog's own hold."""
    lines = ["line %03d%s" % (number, " skip" if number % 3 == 0 else "")
             for number in range(30)]
    (tmp_path / "app.log").write_text("".join(line + "\n" for line in lines))
    conf = tmp_path / "wrapping.conf"
    conf.write_text(conf_text(tmp_path, WRAPPING_WRITER % {"log": tmp_path / "app.log",
                                                            "root": ROOT}))
    kept = [line for line in lines if "skip" not in line]
    nxlog = nxlog_process(conf, tmp_path / "nxlog.log",
                          nxlog_env(moto_server.env, BUCKET=bucket, SERVER="web01",
                                    SPOOL_DIR=tmp_path / "spool"))
    nxlog.wait_for(lambda: len(keys_in(moto_server, bucket)) == len(kept),
                   what="an object for each line kept")
    assert nxlog.stop() == 0, nxlog.log()
    client = moto_server.client()
    assert sorted(client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
                  for key in keys_in(moto_server, bucket)) == kept


STOPS = 8  # with a plain write_data, tests/programs/busy_threads.py crashed NXLog within two
           # stops in each of 4 runs


BUSY_THREADS = """<Input file>
    Module          im_file
    File            "%(log)s"
    SavePos         FALSE
    ReadFromLast    FALSE
</Input>
<Output busy>
    Module      om_python
    PythonCode  %(root)s/tests/programs/busy_threads.py
</Output>
<Route busy>
    Path  file => busy
</Route>
"""


def test_a_stop_ends_the_scripts_threads_before_nxlog_clears_its_interpreter(tmp_path,
                                                                            nxlog_process):
    """NXLog clears and deletes a script's interpreter at its stop, threads or not; a thread
    that wakes after that kills NXLog. common/host.py's EntryPoint, released by NXLog before
    that, ends the threads first: a script whose eight threads wake every 0.1 ms is stopped
    STOPS times, and NXLog exits 0 each time."""
    (tmp_path / "app.log").write_text("".join("line %d\n" % number for number in range(100)))
    conf = tmp_path / "busy.conf"
    conf.write_text(conf_text(tmp_path, BUSY_THREADS % {"log": tmp_path / "app.log",
                                                        "root": ROOT}))
    for _ in range(STOPS):
        nxlog = nxlog_process(conf, tmp_path / "nxlog.log", {"NXLOG_S3_TEST_ENTRY": "host"})
        nxlog.wait_for(lambda nxlog=nxlog: "the first event came" in nxlog.log(),
                       what="the first write_data call (it arms the entry point)")
        assert nxlog.stop(timeout=20) == 0, nxlog.log()
        assert "NXLog stops: the script's threads ended" in nxlog.log(), nxlog.log()
        os.remove(str(tmp_path / "nxlog.log"))


@pytest.mark.parametrize("coordination", ["none", "s3"])
def test_a_stop_after_read_data_met_an_s3_error_still_ends_the_scripts_threads(
        moto_server, bucket, tmp_path, nxlog_process, coordination):
    """An exception caught in read_data keeps, through its traceback's f_back, the frame
    NXLog's call ran in: that frame must not keep the entry point, whose release is the
    stop (it did: with S3 gone, NXLog cleared the interpreter under the script's threads)."""
    gone = dict(moto_server.env, AWS_ENDPOINT_URL="http://127.0.0.1:%d" % free_port())
    reader = start_conf(nxlog_process, "s3-read.conf", tmp_path / "read", nxlog_env(
        gone, BUCKET=bucket, SERVER="*", POLL_INTERVAL=0.5, COORDINATION=coordination),
        OUTFILE=tmp_path / "out.log")
    reader.wait_for(lambda: "ERROR s3_read: cannot read s3://" in reader.log(),
                    what="read_data meeting S3 gone")
    assert reader.stop() == 0
    assert "INFO s3_read: NXLog stops: the script's threads ended in " in reader.log()


@pytest.mark.reliability
def test_nxlog_stops_cleanly_while_the_scripts_threads_are_busy(moto_server, bucket, tmp_path,
                                                                 nxlog_process):
    """NXLog clears a script's interpreter at its stop whether or not the script's threads
    live, and one that wakes after that kills NXLog (SIGSEGV, about one stop in two before
    common/host.py). Each stop here comes while the writer's uploads retry against an
    endpoint that refuses them, and while the reader polls and fetches: NXLog exits 0 every
    time, having ended the threads first."""
    lines = ["line %03d %s" % (number, "x" * 60) for number in range(60)]
    (tmp_path / "app.log").write_text("".join(line + "\n" for line in lines))
    settings = dict(BUCKET=bucket, SERVER="web01")
    first = start_conf(nxlog_process, "s3-write.conf", tmp_path / "first",
                       nxlog_env(moto_server.env, **settings), LOGFILE=tmp_path / "app.log")
    first.wait_for(lambda: len(keys_in(moto_server, bucket)) == len(lines),
                   what="an object for each line, for the readers to fetch")
    assert first.stop() == 0
    down = dict(moto_server.env, AWS_ENDPOINT_URL="http://127.0.0.1:9")  # nothing listens
    for turn in range(STOPS):
        folder = tmp_path / ("turn-%d" % turn)
        writer = start_conf(nxlog_process, "s3-write.conf", folder / "write",
                            nxlog_env(down, BATCH_EVENTS=5, METRICS_FILE=folder / "write.prom",
                                      **settings),
                            LOGFILE=tmp_path / "app.log")
        reader = start_conf(nxlog_process, "s3-read.conf", folder / "read",
                            nxlog_env(moto_server.env, POLL_INTERVAL=0.05,
                                      METRICS_FILE=folder / "read.prom", **settings),
                            OUTFILE=folder / "out.log")
        writer.wait_for(lambda log=writer.log: "cannot store" in log(),
                        what="an upload failing")
        reader.wait_for(lambda log=reader.log: "started" in log(),
                        what="the reader's start (it fetches every object: a new checkpoint)")
        for nxlog in (writer, reader):
            assert nxlog.stop(timeout=20) == 0, nxlog.log()
            assert "NXLog stops: the script's threads ended" in nxlog.log(), nxlog.log()


# ---- A hostile bucket under a real NXLog: it survives, reads on, and names what it sets aside

READ_TO_JSON = """<Extension json>
    Module  xm_json
</Extension>
<Input s3>
    Module      im_python
    PythonCode  %(root)s/s3_read.py
</Input>
<Output file>
    Module  om_file
    File    "%(out)s"
    Exec    $copy_of_raw_event = $raw_event; to_json();
</Output>
<Route restore>
    Path  s3 => file
</Route>
"""


def start_reader(nxlog_process, folder, env):
    """s3_read.py under a real NXLog, each event a JSON line in FOLDER/out.jsonl (every
    field, as NXLog holds it)."""
    conf = folder / "read.conf"
    conf.write_text(conf_text(folder, READ_TO_JSON % {"root": ROOT,
                                                      "out": folder / "out.jsonl"}))
    return nxlog_process(conf, folder / "nxlog.log", env)


def test_the_readers_events_keep_the_writers_receipt_time_and_source(moto_server, bucket,
                                                                      tmp_path, nxlog_process):
    """NXLog's post() adds EventReceivedTime, SourceModuleName and SourceModuleType only to
    an event without them (nx_module_add_logdata_input): the events a reader posts keep the
    ones the writer's NXLog gave them, its receipt time in this host's local time. The stub
    does the same."""
    (tmp_path / "app.log").write_text("one\ntwo\n")
    env = nxlog_env(moto_server.env, BUCKET=bucket, SERVER="web01", BATCH_EVENTS=10,
                    BATCH_AGE=1)
    writer = start_conf(nxlog_process, "s3-write.conf", tmp_path / "write", env,
                        LOGFILE=tmp_path / "app.log")
    writer.wait_for(lambda: keys_in(moto_server, bucket), what="the batch")
    assert writer.stop() == 0
    [key] = keys_in(moto_server, bucket)
    body = moto_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    stored = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    (tmp_path / "read").mkdir()
    reader = start_reader(nxlog_process, tmp_path / "read", env)
    reader.wait_for(lambda: len(lines_of(tmp_path / "read" / "out.jsonl")) >= 2,
                    what="both events read back")
    assert reader.stop() == 0
    posted = [json.loads(line) for line in lines_of(tmp_path / "read" / "out.jsonl")]
    assert [(event["SourceModuleName"], event["SourceModuleType"]) for event in posted] == \
        [(event["SourceModuleName"], event["SourceModuleType"]) for event in stored]
    assert posted[0]["SourceModuleType"] == "im_file"
    assert [event["EventReceivedTime"] for event in posted] == [
        datetime.datetime.fromisoformat(event["EventReceivedTime"]).astimezone().strftime(
            "%Y-%m-%d %H:%M:%S") for event in stored]


def events_out(folder):
    """The events NXLog wrote, less the fields it adds at post(). to_json() leaves out
    raw_event, which the conf copies first."""
    events = []
    for line in lines_of(folder / "out.jsonl"):
        try:
            event = json.loads(line)
        except ValueError:  # NXLog's to_json() gives up on an event of a MiB: raw_event
            continue        # is written as it is
        for name in ("EventReceivedTime", "SourceModuleName", "SourceModuleType"):
            event.pop(name, None)
        if "copy_of_raw_event" in event:
            event["raw_event"] = event.pop("copy_of_raw_event")
        events.append(event)
    return events


def set_aside(folder, server):
    try:
        saved = json.loads((folder / "lastkey.log").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return saved["servers"].get(server, {}).get("set_aside", {})


def put_object(endpoint, bucket, key, body, metadata):
    endpoint.client().put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_no_hostile_object_crashes_a_real_nxlog_nor_holds_back_the_next(
        moto_server, bucket, tmp_path, nxlog_process, name):
    body, metadata = HOSTILE[name][0]()
    key = "web01/2026-03-01/10.00.01.1" + (".parquet" if metadata is PARQUET else ".jsonl.gz")
    put_object(moto_server, bucket, "web01/2026-03-01/10.00.00.1.jsonl.gz",
               *json_lines({"raw_event": "before"}))
    put_object(moto_server, bucket, key, body, metadata)
    put_object(moto_server, bucket, "web01/2026-03-01/10.00.02.1.jsonl.gz",
               *json_lines({"raw_event": "after"}))
    reader = start_reader(nxlog_process, tmp_path, nxlog_env(
        moto_server.env, BUCKET=bucket, SERVER="web01", MAX_ATTEMPTS=1, POLL_INTERVAL=0.2))
    reader.wait_for(lambda: {"raw_event": "after"} in events_out(tmp_path),
                    what="the object after %s" % name)
    assert reader.alive()
    _, outcome, fields = HOSTILE[name]
    named = [line for line in reader.log().splitlines()
             if repr("s3://%s/%s" % (bucket, key)) in line]
    assert (key in set_aside(tmp_path, "web01")) == (outcome == "set aside")
    if outcome == "set aside":
        assert any("set aside" in line for line in named), reader.log()
    if fields is not None:
        if len(json.dumps(fields)) < 65000:  # om_file writes no longer line whole
            assert fields in events_out(tmp_path)
        assert len(named) == 1 and "NXLog cannot take as it is" in named[0]
    assert reader.stop() == 0


NAMES = st.one_of(st.text(min_size=1, max_size=8),  # and names NXLog dies on, often
                  st.text(st.sampled_from("a\x00\ud800\udc80"), min_size=1, max_size=4)).filter(
    lambda name: name not in ("EventReceivedTime", "SourceModuleName", "SourceModuleType",
                              "copy_of_raw_event"))  # set at post(), and by the conf
VALUES = st.one_of(st.text(max_size=20), st.text(st.sampled_from("b\x00\udfff")),
                   st.integers(), st.integers(min_value=2 ** 63),
                   st.integers(max_value=-2 ** 63 - 1), st.booleans(), st.floats(),
                   st.none(), st.lists(st.integers(), max_size=3))


@st.composite
def odd_events(draw):
    """A batch of events with odd names and values, each marked, to be read whole."""
    events = draw(st.lists(st.dictionaries(NAMES, VALUES, max_size=5), min_size=1,
                           max_size=5))
    return "odd events", [dict(event, marker="odd %d" % number)
                          for number, event in enumerate(events)]


def drawn_object(kind, drawn):
    """(body, metadata, the marked events it must bring if it is read, or None)."""
    if kind == "odd events":
        body, metadata = json_lines(*drawn)
        return body, metadata, drawn
    if kind == "bytes":
        body, metadata = drawn
        return body, metadata, None
    body, metadata = drawn()
    return body, metadata, None


HOSTILE_DRAWS = st.one_of(
    odd_events(),
    st.tuples(st.just("bytes"), st.tuples(st.binary(max_size=200), st.sampled_from(
        [{}, JSON_LINES, PARQUET, {"nxlog-s3-compression": "zstd"}]))),
    st.tuples(st.just("built"), st.sampled_from([
        deeply_nested, truncated_gzip, parquet_date_overflow, parquet_dictionary_bomb,
        empty_lines_bomb, lambda: deeply_nested(2000)])),
    st.tuples(st.just("built"), st.tuples(st.sampled_from(ODD_PARQUET_KINDS),
                                          st.integers(0, 2 ** 70)).map(
        lambda drawn: functools.partial(odd_parquet, *drawn))))


def test_generated_hostile_objects_never_crash_a_real_nxlog_and_each_is_read_or_named(
        moto_server, bucket, tmp_path, nxlog_process, soak):
    reader = start_reader(nxlog_process, tmp_path, nxlog_env(
        moto_server.env, BUCKET=bucket, SERVER="*", MAX_ATTEMPTS=1, POLL_INTERVAL=0.2))
    servers = itertools.count(1)

    # each example costs a few seconds of a real NXLog: make soak draws many more
    @hypothesis_settings(max_examples=60 if soak else 10, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(st.lists(HOSTILE_DRAWS, min_size=1, max_size=3))
    def draw(hostile):
        server = "h%d" % next(servers)
        second = server + "/2026-03-01/10.00.%02d.1"
        put_object(moto_server, bucket, second % 0 + ".jsonl.gz",
                   *json_lines({"raw_event": "before " + server}))
        keys = {}
        for number, (kind, drawn) in enumerate(hostile, 1):
            if kind == "odd events":  # marked anew: one marker per event of the whole run
                drawn = [dict(event, marker="%s.%d %s" % (server, number, event["marker"]))
                         for event in drawn]
            body, metadata, expected = drawn_object(kind, drawn)
            keys[second % number] = expected
            put_object(moto_server, bucket, second % number, body, metadata)
        put_object(moto_server, bucket, second % (len(hostile) + 1) + ".jsonl.gz",
                   *json_lines({"raw_event": "after " + server}))
        reader.wait_for(lambda: {"raw_event": "after " + server} in events_out(tmp_path),
                        what="the object after %s" % hostile)
        aside, log, out = set_aside(tmp_path, server), reader.log(), events_out(tmp_path)
        for key, expected in keys.items():
            if key in aside:  # valid JSON lines are read, whatever their names and values
                assert expected is None and repr("s3://%s/%s" % (bucket, key)) in log, key
            elif expected is not None:
                for event in expected:  # (every field's value: see test_hostile_bucket.py)
                    assert any(seen.get("marker") == event["marker"] for seen in out), event
    draw()
    assert reader.alive()
    assert reader.stop() == 0




def test_a_real_nxlog_reading_every_bomb_stays_under_200_mb(moto_server, bucket, tmp_path,
                                                            nxlog_process):
    bombs = [empty_lines_bomb(), parquet_dictionary_bomb(), parquet_huge_event(),
             deeply_nested(), json_lines({"raw_event": "z" * (15 << 20)})]  # < MAX_EVENT_BYTES
    objects = [json_lines({"raw_event": "before"})] + bombs + [json_lines({"raw_event": "after"})]
    for number, (body, metadata) in enumerate(objects):
        put_object(moto_server, bucket, "web01/2026-03-01/10.00.%02d.1" % number, body, metadata)
    reader = start_reader(nxlog_process, tmp_path, nxlog_env(
        moto_server.env, BUCKET=bucket, SERVER="web01", MAX_ATTEMPTS=1, POLL_INTERVAL=0.2))
    reader.wait_for(lambda: {"raw_event": "after"} in events_out(tmp_path),
                    what="the object after the bombs")
    with open("/proc/%d/status" % reader.process.pid) as status:
        peak_kb = int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
    assert peak_kb < 200 * 1024, "NXLog's peak RSS: %d MB" % (peak_kb >> 10)
    assert reader.stop() == 0


def test_two_nxlogs_share_a_bucket_and_one_takes_over_when_the_other_is_killed(
        moto_server, bucket, tmp_path, nxlog_process):
    client, servers = moto_server.client(), ["srv%d" % number for number in range(4)]

    def add(number):
        for server in servers:
            client.put_object(Bucket=bucket, Key="%s/2026-03-01/10.00.%02d.1.jsonl.gz" % (
                server, number), Body=gzip.compress(b"".join(json.dumps({
                    "raw_event": "%s %d %d" % (server, number, place)}).encode() + b"\n"
                    for place in range(200))), Metadata={
                "nxlog-s3-format": "jsonl", "nxlog-s3-compression": "gzip"})

    def events(name):
        return lines_of(tmp_path / ("%s.out" % name))
    for number in range(3):
        add(number)
    nxlogs = {}
    for name in ("a", "b"):
        env = nxlog_env(moto_server.env, BUCKET=bucket, SERVER="*", COORDINATION="s3",
                        READER_NAME=name, LEASE_SECONDS=6, POLL_INTERVAL=1)
        nxlogs[name] = start_conf(nxlog_process, "s3-read.conf", tmp_path / name, env,
                                  OUTFILE=tmp_path / ("%s.out" % name))
    def holders():
        """The READER_NAMEs holding the servers now ('' for one free)."""
        try:
            return {(json.loads(client.get_object(Bucket=bucket, Key="_nxlog-s3/servers/%s.json"
                                                  % server)["Body"].read())["holder"] or "")
                    .split("@")[0] for server in servers}
        except client.exceptions.NoSuchKey:
            return set()
    nxlogs["b"].wait_for(lambda: holders() == {"a", "b"}, what="a and b sharing the servers")
    nxlogs["a"].process.kill()
    add(3)
    every = ["%s %d %d" % (server, number, place) for server in servers
             for number in range(4) for place in range(200)]
    nxlogs["b"].wait_for(lambda: set(events("a") + events("b")) >= set(every), timeout=60,
                         what="every event, through b once a was killed")
    assert nxlogs["b"].stop() == 0
    assert "takes over srv" in nxlogs["b"].log() and " from a@" in nxlogs["b"].log()
    for server in servers:  # in order, from whichever NXLog read it
        posted = [line for line in events("a") + events("b") if line.startswith(server + " ")]
        assert list(dict.fromkeys(posted)) == [line for line in every
                                               if line.startswith(server + " ")]
    assert " ERROR " not in nxlogs["b"].log()


def test_a_reader_with_a_notify_queue_reads_what_is_notified_and_stops_cleanly(
        moto_server, bucket, tmp_path, nxlog_process):
    queue = NotificationQueue(moto_server, bucket).url
    client = moto_server.client()
    env = nxlog_env(moto_server.env, BUCKET=bucket, SERVER="web01", POLL_INTERVAL=0.5,
                    NOTIFY_QUEUE=queue, FULL_POLL_INTERVAL=3600)
    reader = start_conf(nxlog_process, "s3-read.conf", tmp_path / "read", env,
                        OUTFILE=tmp_path / "out.log")
    reader.wait_for(lambda: "news from the queue" in reader.log(), what="the start")
    time.sleep(1)  # its first poll has listed web01: from now on, news alone lists it
    client.put_object(Bucket=bucket, Key="web01/2026-03-01/10.00.00.1", Body=b"notified")
    reader.wait_for(lambda: lines_of(tmp_path / "out.log") == ["notified"], timeout=20,
                    what="the object notified, read")
    assert reader.stop() == 0
    assert "INFO s3_read: NXLog stops: the script's threads ended in " in reader.log()
    assert " ERROR " not in reader.log()
