"""writer/spool_files.py and writer/spool.py: the spool's files, and the flow through it,
each built alone on a temporary folder, with no S3."""

import errno
import json
import os
import threading

import pytest

from nxlog_s3.common.runtime import Disk
from nxlog_s3.writer import spool_files
from nxlog_s3.writer.keys import Keys
from nxlog_s3.writer.spool import Spool
from nxlog_s3.writer.spool_files import SpoolFiles, spool_status
from parts import StillClock, writer_settings

EPOCH = 1_772_359_200  # 2026-03-01 10:00:00 UTC


def line(text):
    return (json.dumps({"raw_event": text, "EventReceivedTime": "2026-03-01 10:00:00"})
            + "\n").encode()


@pytest.fixture
def settings(tmp_path):
    return writer_settings(SPOOL_DIR=tmp_path / "spool", BATCH_EVENTS=3, BATCH_AGE=60,
                           SERVER="web01")


def files_of(settings, clock, log, disk):
    return SpoolFiles(settings.SPOOL_DIR, clock, log, disk, durable=True)


def spool_of(settings, clock, log, disk):
    keys = Keys(settings, None, clock, log)
    spool = Spool(settings, files_of(settings, clock, log, disk), keys, clock, log, disk,
                  threading.Event())
    spool.open()
    spool.recover()
    return spool


def lock_is_held(spool):
    """Whether SPOOL's lock is held now, by this thread or another (it is not reentrant)."""
    free = spool.lock.acquire(blocking=False)
    if free:
        spool.lock.release()
    return not free


def test_a_full_batch_is_closed_with_its_key_and_handed_to_the_uploader(settings, clock, log,
                                                                       disk):
    spool = spool_of(settings, clock, log, disk)
    for text in ("one", "two", "three"):
        spool.append("jsonl", line(text), "2026-03-01 10:00:00")
    batch = spool.next_batch(timeout=0)
    assert (batch.events, batch.key) == (3, "web01/2026-03-01/10.00.00.1.jsonl.gz")
    assert open(batch.path("data"), "rb").read() == line("one") + line("two") + line("three")
    assert json.loads(open(batch.path("json")).read())["key"] == batch.key


def test_a_batch_is_closed_once_batch_age_has_passed_on_the_clock(settings, clock, log, disk):
    spool = spool_of(settings, clock, log, disk)
    spool.append("jsonl", line("one"), "2026-03-01 10:00:00")
    assert spool.next_batch(timeout=0) is None
    clock.now += 60
    assert spool.next_batch(timeout=0).events == 1


def test_no_fsync_runs_while_the_spools_lock_is_held(settings, clock, log):
    held = []

    class Watching(Disk):
        def fsync(self, fd):
            held.append(lock_is_held(spool))
            Disk.fsync(fd)
    spool = spool_of(settings, clock, log, Watching())
    for text in ("one", "two", "three", "four"):  # the fourth waits for BATCH_AGE
        spool.append("jsonl", line(text), "2026-03-01 10:00:00")
    clock.now += 60
    assert spool.next_batch(timeout=0) is not None and spool.next_batch(timeout=0) is not None
    assert held and not any(held)


def test_recovery_closes_a_torn_batch_at_its_last_whole_line(settings, clock, log, disk):
    os.makedirs(settings.SPOOL_DIR, mode=0o700)
    torn = os.path.join(settings.SPOOL_DIR, "000000000007-%d.jsonl.open" % EPOCH)
    with open(torn, "wb") as handle:
        handle.write(line("whole") + line("torn")[:10])
    spool = spool_of(settings, clock, log, disk)
    batch = spool.next_batch(timeout=0)
    assert (batch.seq, batch.events) == (7, 1)
    assert open(batch.path("data"), "rb").read() == line("whole")
    assert spool.next_seq == 8


def test_recovery_sets_a_damaged_manifest_aside_and_keeps_its_files(settings, clock, log,
                                                                    disk):
    os.makedirs(settings.SPOOL_DIR, mode=0o700)
    for name, data in (("000000000003.json", b"{not json"), ("000000000003.data", b"x\n")):
        with open(os.path.join(settings.SPOOL_DIR, name), "wb") as handle:
            handle.write(data)
    spool = spool_of(settings, clock, log, disk)
    assert spool.next_batch(timeout=0) is None
    assert sorted(os.listdir(os.path.join(settings.SPOOL_DIR, "damaged"))) == [
        "000000000003.data", "000000000003.json"]


def test_status_reads_what_the_spool_holds_without_taking_it(settings, clock, log, disk):
    spool = spool_of(settings, clock, log, disk)
    for text in ("one", "two", "three", "four"):
        spool.append("jsonl", line(text), "2026-03-01 10:00:00")
    assert spool.next_batch(timeout=0).events == 3  # closed by an uploader, which has it
    status = spool_status(settings.SPOOL_DIR, EPOCH + 30)
    assert (status["closed_batches"], status["events"], status["in_use"]) == (1, 4, True)
    assert status["open_batch"]["events"] == 1
    assert (status["oldest_event"], status["oldest_event_age"]) == ("2026-03-01T10:00:00Z", 30)


def test_status_reads_again_a_spool_whose_batch_closes_while_it_is_read(settings, clock, log,
                                                                       disk, monkeypatch):
    spool = spool_of(settings, clock, log, disk)
    for text in ("one", "two", "three"):  # a full batch, its close handed over
        spool.append("jsonl", line(text), "2026-03-01 10:00:00")
    lines_in = spool_files._lines_in

    def closed_meanwhile(path):
        monkeypatch.setattr(spool_files, "_lines_in", lines_in)
        spool.next_batch(timeout=0)  # an uploader thread closes it: .open becomes .data
        return lines_in(path)
    monkeypatch.setattr(spool_files, "_lines_in", closed_meanwhile)
    status = spool_status(settings.SPOOL_DIR, EPOCH)
    assert (status["closed_batches"], status["events"], status["open_batch"]) == (1, 3, None)


def test_a_batch_stored_leaves_its_manifest_as_the_last_stored(settings, clock, log, disk):
    spool = spool_of(settings, clock, log, disk)
    for text in ("one", "two", "three"):
        spool.append("jsonl", line(text), "2026-03-01 10:00:00")
    batch = spool.next_batch(timeout=0)
    spool.remove(batch)
    assert spool.pending() == 0
    assert spool_status(settings.SPOOL_DIR, EPOCH)["last_stored"]["key"] == batch.key


class TickingClock(StillClock):
    """A clock that moves STEP seconds at each look: a wait bounded by it ends."""

    def __init__(self, step=0.1):
        StillClock.__init__(self)
        self.step = step

    def monotonic(self):
        self.now += self.step
        return self.now


def test_events_held_through_a_full_disk_are_fsynced_with_the_lock_let_go(tmp_path, log):
    settings = writer_settings(SPOOL_DIR=tmp_path / "spool", BATCH_EVENTS=1, FSYNC="event",
                               SERVER="web01")
    fsyncs = []

    class FullThenNot(Disk):
        full = False

        def write(self, fd, data):
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            return Disk.write(fd, data)

        def fsync(self, fd):
            fsyncs.append((phase[0], lock_is_held(spool)))
            Disk.fsync(fd)
    disk, phase = FullThenNot(), ["write_data"]
    spool = spool_of(settings, TickingClock(), log, disk)
    spool.append("jsonl", line("one"), "2026-03-01 10:00:00")
    disk.full = True
    spool.append("jsonl", line("two"), "2026-03-01 10:00:00")  # held in memory
    assert len(spool.held) == 1
    disk.full, phase[0] = False, "upload"
    spool.remove(spool.next_batch(timeout=0))  # room: the held event is written now
    assert not spool.held and spool.pending() == 1
    from_upload = [held for where, held in fsyncs if where == "upload"]
    assert from_upload and not any(from_upload)


def test_write_data_leaves_the_close_of_a_full_batch_to_an_uploader(settings, clock, log):
    closes = []

    class Watching(Disk):
        def fsync(self, fd):
            closes.append(threading.current_thread().name)
            Disk.fsync(fd)
    spool = spool_of(settings, clock, log, Watching())
    for text in ("one", "two", "three"):
        spool.append("jsonl", line(text), "2026-03-01 10:00:00")
    assert closes == [] and spool.pending() == 3
    uploader = threading.Thread(target=spool.next_batch, args=(0,), name="uploader")
    uploader.start()
    uploader.join(10)
    assert closes == ["uploader"] * 3  # the body, the manifest and the folder


def test_no_more_than_one_full_batch_waits_for_its_close(settings, clock, log, disk):
    spool = spool_of(settings, clock, log, disk)
    for number in range(9):  # three full batches, the uploader threads all busy
        spool.append("jsonl", line("e%d" % number), "2026-03-01 10:00:00")
    names = sorted(os.listdir(settings.SPOOL_DIR))
    assert [name.split(".", 1)[1] for name in names if not name.startswith(".")] == [
        "data", "json", "data", "json", "jsonl.open"]


def test_the_stop_closes_the_full_batches_and_leaves_the_open_one(settings, clock, log, disk):
    spool = spool_of(settings, clock, log, disk)
    for number in range(4):
        spool.append("jsonl", line("e%d" % number), "2026-03-01 10:00:00")
    spool.release()
    names = sorted(name for name in os.listdir(settings.SPOOL_DIR) if name[0] != ".")
    assert [name.split(".", 1)[1] for name in names] == ["data", "json", "jsonl.open"]


def test_a_batch_closed_after_a_younger_one_is_still_uploaded_first(tmp_path, log):
    settings = writer_settings(SPOOL_DIR=tmp_path / "spool", BATCH_EVENTS=1, FSYNC="batch",
                               SERVER="web01")
    closing_held, let_go = threading.Event(), threading.Event()

    class SlowOnce(Disk):
        hold = False

        def fsync(self, fd):
            if self.hold:  # the close of e1's batch takes its time
                self.hold = False
                closing_held.set()
                let_go.wait(10)
            Disk.fsync(fd)
    disk, clock = SlowOnce(), TickingClock(step=1.0)
    spool = spool_of(settings, clock, log, disk)
    spool.append("jsonl", line("e0"), "2026-03-01 10:00:00")
    first = spool.next_batch(timeout=0)  # being uploaded
    spool.append("jsonl", line("e1"), "2026-03-01 10:00:00")  # its close handed over
    disk.hold = True
    taken = []
    slow = threading.Thread(target=lambda: taken.append(spool.next_batch(timeout=0)))
    slow.start()  # an uploader thread, closing e1's batch
    assert closing_held.wait(10)
    spool.append("jsonl", line("e2"), "2026-03-01 10:00:00")
    spool.append("jsonl", line("e3"), "2026-03-01 10:00:00")  # two wait: both closed here,
    let_go.set()                                              # before e1's
    slow.join(10)
    assert [first.seq, taken[0].seq, spool.next_batch(timeout=0).seq,
            spool.next_batch(timeout=0).seq] == [1, 2, 3, 4]
