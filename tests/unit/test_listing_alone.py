"""The reader's listing, deadline and order (deadline.py, listing.py, fetch.py's Round),
each alone: S3's pages come from a stand-in paginator, the clock is held still."""

import threading

import pytest

from nxlog_s3.reader.deadline import Deadline, TimeUp
from nxlog_s3.reader.fetch import Fetcher, Round
from nxlog_s3.reader.listing import Listing, ListingPass
from nxlog_s3.reader.position import Seconds
from parts import reader_settings

MODIFIED = __import__("datetime").datetime(2026, 3, 1, 10, tzinfo=__import__(
    "datetime").timezone.utc)


class Pages(object):
    """list_objects_v2's paginator over PAGES of keys; a page waits until its event in
    HELD (by its index) is set."""

    def __init__(self, pages, held=None):
        self.pages, self.held = pages, held or {}

    def get_paginator(self, name):
        assert name == "list_objects_v2"
        return self

    def paginate(self, **arguments):
        for index, keys in enumerate(self.pages):
            if index in self.held:
                self.held[index].wait(10)
            yield {"Contents": [{"Key": key, "Size": 1, "LastModified": MODIFIED,
                                 "ETag": '"e"'} for key in keys]}


class Checkpoint(object):
    """What a listing asks of the checkpoint: the seconds, and whether a key is news."""

    seconds = Seconds("utc")

    def first_sight_of_other_key(self, key):
        return True


@pytest.fixture
def listing_of(clock, log):
    made = []

    def make(pages, held=None):
        settings = reader_settings(SERVER="web01")
        client = Pages(pages, held)
        fetcher = Fetcher(settings, client)
        made.append(fetcher)
        return Listing(settings, client, Checkpoint(), fetcher, clock, log)
    yield make
    for fetcher in made:
        fetcher.stop()


def key(second, counter):
    return "web01/2026-03-01/10.00.%02d.%s" % (second, counter)


def test_a_deadline_says_what_is_left_and_when_it_has_passed(clock):
    deadline = Deadline(clock, 1.0)
    assert (deadline.left(), deadline.passed()) == (1.0, False)
    clock.now += 1.5
    assert (deadline.left(), deadline.passed()) == (0.0, True)
    with pytest.raises(TimeUp):
        deadline.check()


def test_no_deadline_waits_as_long_as_it_takes(clock):
    deadline = Deadline(clock)
    clock.now += 10 ** 6
    assert deadline.left() is None and not deadline.passed()


def test_a_second_split_across_two_pages_is_read_in_counter_order(listing_of, clock):
    listing = listing_of([[key(0, 1), key(0, 10)], [key(0, 2), key(1, 1)]])
    listed = ListingPass(listing, "web01", None)
    unbounded = Deadline(clock)
    assert [item.key for item in iter(lambda: listed.next(unbounded), None)] == [
        key(0, 1), key(0, 2), key(0, 10), key(1, 1)]


def test_a_page_not_there_in_time_raises_time_up_and_the_pass_keeps_its_place(listing_of,
                                                                              clock):
    second_page = threading.Event()
    listing = listing_of([[key(0, 1), key(0, 2), key(1, 1)], [key(1, 2), key(2, 1)]],
                         held={1: second_page})
    listed, unbounded = ListingPass(listing, "web01", None), Deadline(clock)
    assert [listed.next(unbounded).key for _ in range(2)] == [key(0, 1), key(0, 2)]
    with pytest.raises(TimeUp):  # second 1 goes on in the page S3 has not sent
        listed.next(Deadline(clock, 0.0))
    second_page.set()
    assert [item.key for item in iter(lambda: listed.next(unbounded), None)] == [
        key(1, 1), key(1, 2), key(2, 1)]


def test_keys_off_the_scheme_are_reported_and_passed(listing_of, clock):
    reported = []
    listing = listing_of([["web01/notes.txt", key(0, 1)]])
    listed = ListingPass(listing, "web01", None, report=lambda *each: reported.append(each))
    assert listed.next(Deadline(clock)).key == key(0, 1)
    assert reported and reported[0][0] == "web01/notes.txt"


class Items(object):
    """A listing pass over ITEMS that raises TimeUp where an item is None."""

    def __init__(self, items):
        self.items = list(items)

    def next(self, deadline):
        if not self.items:
            return None
        item = self.items.pop(0)
        if item is None:
            raise TimeUp()
        return item


class Ahead(object):
    settings = reader_settings(FETCH_THREADS=2)

    def ahead(self, item):
        return "fetching " + item


def test_a_round_gives_what_it_has_at_hand_when_the_listing_is_late(clock):
    work = Round(Items(["a", None, "b"]), Ahead())
    deadline = Deadline(clock, 1.0)
    assert work.next(deadline) == ("a", "fetching a")  # the late page is not waited for
    assert work.next(deadline) == ("b", "fetching b")  # it came meanwhile
    assert work.next(deadline) is None


def test_a_round_with_nothing_at_hand_ends_the_call_and_keeps_its_place(clock):
    work = Round(Items([None, "a"]), Ahead())
    deadline = Deadline(clock, 1.0)
    with pytest.raises(TimeUp):
        work.next(deadline)
    assert work.next(deadline) == ("a", "fetching a")


def test_a_round_passes_over_what_it_is_told_to_skip(clock):
    work = Round(Items(["a", "b", "c"]), Ahead(), skip=lambda item: item == "b")
    unbounded = Deadline(clock)
    assert [entry[0] for entry in iter(lambda: work.next(unbounded), None)] == ["a", "c"]
