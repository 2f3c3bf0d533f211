"""The stub's `nxlog` module behaves as ../shared/nxlog-python-api.md says NXLog does."""

import datetime
import re

import nxlog
import pytest

from nxlog_stub import api


def test_the_nxlog_module_offers_the_four_log_functions_and_the_c_library():
    public = sorted(name for name in dir(nxlog) if not name.startswith("_"))
    assert public == ["libpynxlog", "log_debug", "log_error", "log_info", "log_warning"]
    nxlog.log_info("through the module scripts import")
    assert api.logged("INFO") == ["through the module scripts import"]


def test_the_c_library_reads_and_posts_events_as_the_wrappers_methods_do():
    """NXLog CE's wrapper calls libpynxlog with the module's c_module and the event's
    c_logdata; the scripts make those calls themselves (nxlog_s3/common/events.py)."""
    library, module = nxlog.libpynxlog, api.input_module("in")
    event = library.logdata_new()
    assert library.set_logdata_field(module.c_module, event, "n", 7)
    library.post_logdata(module.c_module, event)
    [posted] = module.take_posted()
    names = library.get_logdata_field_names(module.c_module, posted.c_logdata)
    assert names == posted.field_names() and "n" in names
    assert library.get_logdata_field(module.c_module, posted.c_logdata, "n") == 7
    assert posted.get_field("SourceModuleName") == "in"


def test_the_legacy_api_has_no_c_library_underneath():
    api.set_flavour(api.LEGACY)
    try:
        module = api.input_module("in")
        assert not hasattr(module, "c_module")
        assert not hasattr(module.new_logdata(), "c_logdata")
    finally:
        api.set_flavour(api.CURRENT)


@pytest.mark.parametrize("function, level", [
    ("log_debug", "DEBUG"), ("log_info", "INFO"), ("log_warning", "WARNING"),
    ("log_error", "ERROR")])
def test_log_functions_are_captured_with_their_level(function, level):
    getattr(nxlog, function)("message %d" % 7)
    assert api.LOGS == [(level, "message 7")]
    assert api.logged(level) == ["message 7"]


def test_module_storage_is_a_plain_dict_per_instance():
    first, second = api.input_module("a"), api.output_module("b")
    first["k"] = 1
    assert first["k"] == 1 and "k" in first and "k" not in second
    with pytest.raises(KeyError):
        second["k"]


@pytest.mark.parametrize("member", ["get", "keys", "__delitem__"])
def test_module_storage_has_no_other_dict_methods(member):
    assert not hasattr(api.input_module(), member)


def test_logdata_new_gives_an_event_holding_an_empty_raw_event():
    event = api.input_module().logdata_new()
    assert event.field_names() == ["raw_event"]
    assert event.get_field("raw_event") == ""


@pytest.mark.parametrize("member", ["logdata_new", "set_read_timer"])
def test_output_modules_have_no_input_methods(member):
    with pytest.raises(AttributeError):
        getattr(api.output_module(), member)


def test_get_field_of_a_missing_field_is_none():
    assert api.input_module().logdata_new().get_field("nope") is None


@pytest.mark.parametrize("value, stored", [
    (5, 5), (True, 1), (False, 0), ("text", "text"), ("\u00e9t\u00e9", "\u00e9t\u00e9"),
    (1.5, "1.5"), (None, "None"), (b"xyz", "b'xyz'"),
    (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05"),
])
def test_set_field_converts_as_nxlog_does(value, stored):
    event = api.input_module().logdata_new()
    assert event.set_field("f", value) is True
    assert event.get_field("f") == stored
    assert type(event.get_field("f")) is type(stored)


def test_delete_field_says_whether_the_field_existed():
    event = api.input_module().logdata_new()
    event.set_field("f", 1)
    assert event.delete_field("f") is True
    assert event.delete_field("f") is False
    assert event.field_names() == ["raw_event"]


def test_field_names_is_a_list_of_str():
    event = api.input_module().logdata_new()
    event.set_field("a", 1)
    names = event.field_names()
    assert isinstance(names, list) and names == ["raw_event", "a"]


def test_binary_fields_come_back_as_memoryview():
    event = api.new_event(api.output_module(), {"bin": memoryview(b"\x00\x01")})
    assert isinstance(event.get_field("bin"), memoryview)


def test_event_module_is_the_owning_module():
    module = api.input_module()
    assert module.logdata_new().module is module


def test_post_from_an_input_adds_the_fields_nxlog_adds():
    module = api.input_module("reader")
    event = module.logdata_new()
    event.set_field("raw_event", "x")
    event.post()
    assert module.take_posted() == [event]
    assert event.get_field("SourceModuleName") == "reader"
    assert event.get_field("SourceModuleType") == "im_python"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", event.get_field("EventReceivedTime"))


def test_a_delivery_hook_takes_each_event_as_it_is_posted():
    module, taken = api.input_module(), []
    module.deliver = taken.append
    event = module.logdata_new()
    event.post()
    assert taken == [event] and module.take_posted() == []


def test_post_from_a_non_input_module_logs_an_error_and_does_not_raise():
    event = api.new_event(api.output_module(), {"raw_event": "x"})
    assert event.post() is None
    assert api.logged("ERROR") == ["Trying to post logdata from non-input module"]


def test_event_received_time_is_local_time_without_fraction_or_zone():
    assert api.local_time_string(0) == datetime.datetime.fromtimestamp(0).strftime(
        "%Y-%m-%d %H:%M:%S")


def read_data_that(*actions):
    def read_data(module):
        for action in actions:
            action(module)
    return read_data


def test_read_data_with_one_timer_is_called_again_after_that_delay():
    delay, _ = api.call_read_data(read_data_that(lambda m: m.set_read_timer(2.5)),
                                  api.input_module())
    assert delay == 2.5


def test_read_data_without_a_timer_is_never_called_again():
    delay, _ = api.call_read_data(read_data_that(), api.input_module())
    assert delay is None


def test_a_second_set_read_timer_in_one_call_breaks_the_input_for_good():
    module = api.input_module()
    delay, _ = api.call_read_data(
        read_data_that(lambda m: m.set_read_timer(1), lambda m: m.set_read_timer(1)), module)
    assert delay is None and module.broken
    assert any("set_read_timer called twice" in message for message in api.logged("ERROR"))
    delay, _ = api.call_read_data(read_data_that(lambda m: m.set_read_timer(1)), module)
    assert delay is None


def test_one_timer_per_call_may_be_set_in_every_call():
    module = api.input_module()
    for _ in range(3):
        delay, _ = api.call_read_data(read_data_that(lambda m: m.set_read_timer(1)), module)
        assert delay == 1


def fail(module):
    raise ValueError("boom")


def test_read_data_raising_before_scheduling_stops_the_input():
    delay, _ = api.call_read_data(read_data_that(fail), api.input_module())
    assert delay is None
    assert "ValueError: boom" in api.logged("ERROR")[0]


def test_read_data_raising_after_scheduling_keeps_polling():
    delay, _ = api.call_read_data(
        read_data_that(lambda m: m.set_read_timer(3), fail), api.input_module())
    assert delay == 3
    assert api.logged("ERROR")[0].startswith("Python ERROR:")


def test_posted_events_are_handed_over_once():
    def post_two(module):
        for text in ("a", "b"):
            event = module.logdata_new()
            event.set_field("raw_event", text)
            event.post()
    module = api.input_module()
    _, events = api.call_read_data(post_two, module)
    assert [event.get_field("raw_event") for event in events] == ["a", "b"]
    assert module.take_posted() == []


def test_write_data_raising_is_logged_and_drops_that_event():
    def write_data(event):
        raise RuntimeError("cannot store")
    taken = api.call_write_data(write_data, api.new_event(api.output_module(), {}))
    assert taken is False
    assert "RuntimeError: cannot store" in api.logged("ERROR")[0]


def test_write_data_returning_takes_the_event():
    assert api.call_write_data(lambda event: None, api.new_event(api.output_module(), {}))


class TestLegacyFlavour:
    @pytest.fixture(autouse=True)
    def legacy(self):
        api.set_flavour(api.LEGACY)

    def test_offers_the_older_names(self):
        module = api.input_module()
        event = module.new_logdata()
        event.set_field("a", 1)
        assert event.get_names() == ["raw_event", "a"]
        delay, _ = api.call_read_data(lambda m: m.add_read_event(4), module)
        assert delay == 4

    @pytest.mark.parametrize("member", ["logdata_new", "set_read_timer"])
    def test_lacks_the_current_module_names(self, member):
        with pytest.raises(AttributeError):
            getattr(api.input_module(), member)

    def test_lacks_field_names(self):
        with pytest.raises(AttributeError):
            api.input_module().new_logdata().field_names()

    def test_events_handed_to_outputs_use_the_legacy_names(self):
        event = api.new_event(api.output_module(), {"raw_event": "x"})
        assert event.get_names() == ["raw_event"]


def test_current_flavour_lacks_the_legacy_names():
    module = api.input_module()
    assert not hasattr(module, "new_logdata") and not hasattr(module, "add_read_event")
    assert not hasattr(module.logdata_new(), "get_names")


def test_post_keeps_the_fields_set_before_and_adds_those_an_event_lacks():
    """As NXLog CE 3.1.15 does (nx_module_add_logdata_input): a reader's events keep the
    EventReceivedTime and SourceModuleName the writer's NXLog gave them."""
    module = api.input_module("s3")
    kept = module.logdata_new()
    kept.set_field("EventReceivedTime", "2020-01-01 00:00:00")
    kept.set_field("SourceModuleName", "file")
    kept.post()
    module.logdata_new().post()
    first, second = module.take_posted()
    assert (first.get_field("EventReceivedTime"), first.get_field("SourceModuleName"),
            first.get_field("SourceModuleType")) == ("2020-01-01 00:00:00", "file", "im_python")
    assert second.get_field("SourceModuleName") == "s3"
    assert second.get_field("EventReceivedTime") != "2020-01-01 00:00:00"
