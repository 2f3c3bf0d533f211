"""`python -m nxlog_stub CONF` parses nxlog.conf and runs its routes the way NXLog does."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from nxlog_stub import api
from nxlog_stub.__main__ import main
from nxlog_stub.conf import ConfError, parse
from nxlog_stub.runner import Runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def file_route(tmp_path, read_from_last="FALSE"):
    return write(tmp_path / "nxlog.conf", """
        define DIR %s
        define SRC in.log
        # a comment
        <Input in>
            Module        im_file
            File          "%%DIR%%/%%SRC%%"
            SavePos       TRUE
            ReadFromLast  %s
        </Input>
        <Output out>
            Module  om_file
            File    '%%DIR%%/out.log'
        </Output>
        <Route r>
            Path  in => out
        </Route>
        """ % (tmp_path, read_from_last))


def run(conf, idle=0.3, **overrides):
    runner = Runner(parse(conf, overrides), cache_dir=os.path.dirname(conf), idle=idle)
    runner.run()
    return runner


def test_im_file_to_om_file_copies_every_line(tmp_path):
    (tmp_path / "in.log").write_text("one\ntwo\nthree\n")
    run(file_route(tmp_path))
    assert (tmp_path / "out.log").read_text() == "one\ntwo\nthree\n"


def test_savepos_resumes_after_the_last_line_read(tmp_path):
    conf = file_route(tmp_path)
    (tmp_path / "in.log").write_text("one\n")
    run(conf)
    with open(tmp_path / "in.log", "a") as handle:
        handle.write("two\n")
    run(conf)
    assert (tmp_path / "out.log").read_text() == "one\ntwo\n"


def test_read_from_last_skips_what_the_file_held_at_the_first_start(tmp_path):
    (tmp_path / "in.log").write_text("old\n")
    run(file_route(tmp_path, read_from_last="TRUE"))
    assert (tmp_path / "out.log").read_text() == ""


def test_a_define_can_be_replaced_from_the_command_line(tmp_path):
    (tmp_path / "other.log").write_text("from other\n")
    run(file_route(tmp_path), SRC="other.log")
    assert (tmp_path / "out.log").read_text() == "from other\n"


@pytest.mark.parametrize("text, message", [
    ("Bogus 1", "unknown directive 'Bogus' outside a block"),
    ("<Input x>\n    Module im_file\n    File 'a'\n    Polling 1\n</Input>",
     "unknown directive 'Polling' for module im_file in <Input x>"),
    ("<Input x>\n    Module im_tcp\n</Input>", "unknown module 'im_tcp'"),
    ("<Processor x>\n</Processor>", "unknown block <Processor>"),
    ("<Input x>\n    Module im_file\n</Input>", "<Input x> needs a file directive"),
    ("<Output x>\n    Module im_file\n    File 'a'\n</Output>",
     "im_file cannot be used in an <Output"),
    ("<Input x>\n    Module im_file\n    File '%NOPE%'\n</Input>", "%NOPE% is not defined"),
    ("<Input x>\n    Module im_file\n    File 'a'\n", "<Input x> is not closed"),
    ("<Route r>\n    Path a => b\n</Route>", "Path names 'a', which is no <Input> block above"),
])
def test_a_bad_conf_is_refused_with_file_line_and_reason(tmp_path, text, message):
    conf = write(tmp_path / "bad.conf", text + "\n")
    with pytest.raises(ConfError) as caught:
        parse(conf)
    assert str(caught.value).startswith(conf + ":")
    assert message in str(caught.value)


def test_the_line_number_is_the_offending_line(tmp_path):
    conf = write(tmp_path / "bad.conf", "# one\n\n<Input x>\n    Module im_file\n    Nope 1\n")
    with pytest.raises(ConfError, match=r"bad.conf:5: "):
        parse(conf)


PYTHON_ROUTE = """
    <Input py>
        Module      im_python
        PythonCode  %(dir)s/reader.py
        %(call)s
    </Input>
    <Output pyout>
        Module      om_python
        PythonCode  %(dir)s/writer.py
    </Output>
    <Route r>
        Path  py => pyout
    </Route>
"""


def python_route(tmp_path, reader, writer="def write_data(event):\n    pass\n", call=""):
    write(tmp_path / "reader.py", reader)
    write(tmp_path / "writer.py", writer)
    return write(tmp_path / "nxlog.conf", PYTHON_ROUTE % {"dir": tmp_path, "call": call})


READ_THREE = """
    import nxlog
    def read_data(module):
        if "n" not in module:
            module["n"] = 0
        module["n"] += 1
        event = module.logdata_new()
        event.set_field("raw_event", "event %d" % module["n"])
        event.post()
        if module["n"] < 3:
            module.set_read_timer(0.01)
"""

COLLECT = """
    import json, nxlog
    def write_data(event):
        with open("collected.jsonl", "a") as handle:
            fields = {n: event.get_field(n) for n in event.field_names()}
            handle.write(json.dumps(fields) + "\\n")
"""


def collected(tmp_path):
    with open(tmp_path / "collected.jsonl") as handle:
        return [json.loads(line) for line in handle]


def test_im_python_events_reach_om_python_with_the_fields_nxlog_adds(tmp_path):
    runner = run(python_route(tmp_path, READ_THREE, COLLECT))
    events = collected(tmp_path)
    assert [event["raw_event"] for event in events] == ["event 1", "event 2", "event 3"]
    assert all(e["SourceModuleName"] == "py" and e["SourceModuleType"] == "im_python"
               for e in events)
    assert "3 read_data calls" in runner.report()[0]


def test_im_file_events_carry_the_fields_nxlog_gives_them(tmp_path):
    conf = write(tmp_path / "nxlog.conf", """
        <Input in>
            Module        im_file
            File          "%s/in.log"
            ReadFromLast  FALSE
        </Input>
        <Output pyout>
            Module      om_python
            PythonCode  %s/writer.py
        </Output>
        <Route r>
            Path  in => pyout
        </Route>
        """ % (tmp_path, tmp_path))
    write(tmp_path / "writer.py", COLLECT)
    (tmp_path / "in.log").write_text("hello\n")
    run(conf)
    [event] = collected(tmp_path)
    assert event["raw_event"] == "hello"
    assert event["SourceModuleName"] == "in" and event["SourceModuleType"] == "im_file"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", event["EventReceivedTime"])


def test_call_names_the_function_nxlog_calls(tmp_path):
    reader = READ_THREE.replace("def read_data", "def read_event")
    run(python_route(tmp_path, reader, COLLECT, call="Call read_event"))
    assert len(collected(tmp_path)) == 3


def test_a_script_without_read_data_is_never_run(tmp_path):
    reader = READ_THREE.replace("def read_data", "def read_event")
    run(python_route(tmp_path, reader, COLLECT))
    assert "'read_data' func not found!" in api.logged("ERROR")
    assert not (tmp_path / "collected.jsonl").exists()


def test_each_python_code_instance_has_its_own_globals(tmp_path):
    write(tmp_path / "counter.py", """
        import nxlog
        calls = 0
        def write_data(event):
            global calls
            calls += 1
            nxlog.log_info("%s %d" % (event.module._name, calls))
    """)
    conf = write(tmp_path / "nxlog.conf", """
        <Input in>
            Module        im_file
            File          "%(d)s/in.log"
            ReadFromLast  FALSE
        </Input>
        <Output a>
            Module      om_python
            PythonCode  %(d)s/counter.py
        </Output>
        <Output b>
            Module      om_python
            PythonCode  %(d)s/counter.py
        </Output>
        <Route r>
            Path  in => a, b
        </Route>
        """ % {"d": tmp_path})
    (tmp_path / "in.log").write_text("x\ny\n")
    run(conf)
    assert sorted(api.logged("INFO")) == ["a 1", "a 2", "b 1", "b 2"]


def test_write_data_raising_drops_the_event_and_later_events_continue(tmp_path):
    writer = """
        def write_data(event):
            if event.get_field("raw_event") == "event 2":
                raise ValueError("refused")
            with open("kept.txt", "a") as handle:
                handle.write(event.get_field("raw_event") + "\\n")
    """
    runner = run(python_route(tmp_path, READ_THREE, writer))
    assert (tmp_path / "kept.txt").read_text() == "event 1\nevent 3\n"
    assert "2 events written, 1 dropped" in runner.report()[1]
    assert any("ValueError: refused" in message for message in api.logged("ERROR"))


def test_an_input_that_schedules_nothing_stops_for_good(tmp_path):
    reader = READ_THREE.replace("if module[\"n\"] < 3:", "if False:")
    runner = run(python_route(tmp_path, reader, COLLECT))
    assert len(collected(tmp_path)) == 1
    assert "1 read_data calls" in runner.report()[0] and "stopped for good" in runner.report()[0]


def test_the_runner_waits_for_the_timer_before_calling_again(tmp_path):
    reader = READ_THREE.replace("set_read_timer(0.01)", "set_read_timer(0.4)")
    conf = python_route(tmp_path, reader, COLLECT)
    runner = Runner(parse(conf), cache_dir=str(tmp_path), idle=0.2)
    runner.run()  # idles out before the 0.4 s timer is due
    assert len(collected(tmp_path)) == 1


def test_the_command_line_prints_what_it_did_and_exits_0(tmp_path, capsys):
    (tmp_path / "in.log").write_text("one\n")
    assert main([file_route(tmp_path), "--idle", "0.2", "--cache-dir", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "in (im_file %s/in.log: 1 events)" % tmp_path in out
    assert "out (om_file %s/out.log: 1 events written)" % tmp_path in out


STOPPING = """
    import nxlog
    def write_data(event):
        pass
    def stop():
        nxlog.log_warning("stopping: 2 events left behind")
"""


def test_at_its_stop_the_stub_stops_each_script_and_sums_up_what_they_logged(tmp_path, capsys):
    conf = python_route(tmp_path, READ_THREE, STOPPING)
    assert main([conf, "--idle", "0.2", "--cache-dir", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  at the stop: WARNING stopping: 2 events left behind" in out
    assert api.logged("WARNING") == ["stopping: 2 events left behind"]


def test_a_script_never_called_is_not_stopped_as_nxlog_never_arms_its_release(tmp_path,
                                                                              capsys):
    quiet = python_route(tmp_path, "def read_data(module):\n    module.set_read_timer(60)\n",
                         STOPPING)
    assert main([quiet, "--idle", "0.2", "--cache-dir", str(tmp_path), "-q"]) == 0
    assert "at the stop" not in capsys.readouterr().out
    assert api.logged("WARNING") == []


def test_a_script_whose_stop_raises_is_named_in_the_summary_and_the_run_ends_well(tmp_path,
                                                                                 capsys):
    conf = python_route(tmp_path, READ_THREE, STOPPING.replace(
        'nxlog.log_warning("stopping: 2 events left behind")', 'raise OSError("disk gone")'))
    assert main([conf, "--idle", "0.2", "--cache-dir", str(tmp_path), "-q"]) == 0
    assert "  at the stop: ERROR %s: stop() raised OSError: disk gone" % (
        tmp_path / "writer.py") in capsys.readouterr().out.splitlines()


def test_the_log_says_nxlog_started_after_the_scripts_started_as_nxlog_logs_it(tmp_path):
    conf = python_route(tmp_path, READ_THREE, "import nxlog\nnxlog.log_info('writer up')\n"
                        "def write_data(event):\n    pass\n")
    assert main([conf, "--idle", "0.2", "--cache-dir", str(tmp_path), "-q"]) == 0
    assert api.logged("INFO")[:2] == ["writer up", "nxlog-ce-3.1.15 started"]


def test_the_command_line_refuses_a_bad_conf_with_exit_2(tmp_path):
    conf = write(tmp_path / "bad.conf", "Nonsense here\n")
    result = subprocess.run([sys.executable, "-m", "nxlog_stub", conf], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "bad.conf:1: unknown directive 'Nonsense'" in result.stderr


def test_a_script_raising_at_import_is_logged_as_nxlog_does_and_nxlog_runs_on(tmp_path):
    conf = python_route(tmp_path, "raise ImportError('no boto3 here')\n")
    result = subprocess.run([sys.executable, "-m", "nxlog_stub", conf, "--idle", "0.2"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0  # NXLog's at a later stop: a service manager sees no fault
    errors = [line.split(" ERROR ", 1)[1] for line in result.stderr.splitlines()
              if " ERROR " in line]
    assert errors == [
        "Python ERROR: ImportError: no boto3 here",
        "#0 in <module> at %s/reader.py:1" % tmp_path,
        "Couldn't import python module 'reader'",
        '### ASSERTION FAILED at line 503 in libnxpython.c/nx_python_init(): '
        '"conf->thread_state_key == NULL" ###']
    assert "im_python %s/reader.py: 0 read_data calls, 0 events" % tmp_path in result.stdout


def test_an_output_that_raised_at_import_takes_no_event_and_holds_its_input_back(tmp_path):
    (tmp_path / "in.log").write_text("".join("line %d\n" % n for n in range(2500)))
    write(tmp_path / "broken.py", "raise ValueError('bad setting')\n")
    conf = write(tmp_path / "deaf.conf", """
<Input in>
    Module im_file
    File "%s/in.log"
    ReadFromLast FALSE
</Input>
<Output out>
    Module om_python
    PythonCode %s/broken.py
</Output>
<Route r>
    Path in => out
</Route>
""" % (tmp_path, tmp_path))
    result = subprocess.run([sys.executable, "-m", "nxlog_stub", conf, "--idle", "0.2", "-q",
                             "--cache-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0
    # The stub's im_file reads 1,000 lines at a time: the queue is over its 100 after one.
    assert "out (om_python %s/broken.py: not started, 1000 events wait in its queue)" \
        % tmp_path in result.stdout
    assert "in (im_file %s/in.log: 1000 events, held back by flow control)" % tmp_path \
        in result.stdout


def test_a_script_that_ends_the_process_at_import_ends_nxlog_with_its_status(tmp_path):
    conf = python_route(tmp_path, "import os, nxlog\nnxlog.log_error('refused')\n"
                                  "os._exit(78)\n")
    result = subprocess.run([sys.executable, "-m", "nxlog_stub", conf], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 78
    assert result.stderr.splitlines()[-1].endswith(" ERROR refused")


def test_legacy_flavour_runs_scripts_written_for_the_older_names(tmp_path):
    api.set_flavour(api.LEGACY)
    reader = READ_THREE.replace("logdata_new", "new_logdata").replace(
        "set_read_timer", "add_read_event")
    run(python_route(tmp_path, reader, COLLECT.replace("field_names", "get_names")))
    assert len(collected(tmp_path)) == 3


def with_globals(tmp_path, directives):
    """file_route's conf with global DIRECTIVES before its blocks."""
    conf = file_route(tmp_path)
    with open(conf) as handle:
        text = handle.read()
    with open(conf, "w") as handle:
        handle.write(textwrap.dedent(directives).lstrip() + text)
    return conf


def test_the_global_directives_place_the_pid_log_positions_and_working_directory(tmp_path):
    (tmp_path / "in.log").write_text("one\n")
    for folder in ("spool", "cache", "log"):
        (tmp_path / folder).mkdir()
    conf = with_globals(tmp_path, """
        PidFile   %s/nxlog.pid
        SpoolDir  %s/spool
        CacheDir  %s/cache
        LogFile   %s/log/nxlog.log
        LogLevel  WARNING
        Moduledir /usr/libexec/nxlog/modules
        """ % ((tmp_path,) * 4))
    reader = write(tmp_path / "where.py", """
        import os
        import nxlog
        nxlog.log_info("not at LogLevel WARNING")
        nxlog.log_warning("working in " + os.getcwd())
        with open(os.path.join(os.path.dirname(__file__), "pid-seen"), "w") as handle:
            handle.write(open(%r).read())

        def read_data(module):
            pass
        """ % str(tmp_path / "nxlog.pid"))
    with open(conf, "a") as handle:
        handle.write("<Input where>\n  Module im_python\n  PythonCode %s\n</Input>\n"
                     "<Route w>\n  Path where => out\n</Route>\n" % reader)
    result = subprocess.run([sys.executable, "-m", "nxlog_stub", conf, "--idle", "0.2", "-q"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pid-seen").read_text().strip().isdigit()  # written while it ran
    assert not (tmp_path / "nxlog.pid").exists()  # and removed at the stop
    assert (tmp_path / "log" / "nxlog.log").read_text().splitlines()[0].endswith(
        " WARNING working in %s/spool" % tmp_path)
    assert "not at LogLevel" not in (tmp_path / "log" / "nxlog.log").read_text()
    assert os.path.exists(tmp_path / "cache" / "nxlog_stub.positions.json")
    assert result.stderr == ""  # -q: nothing echoed


def test_a_pid_file_that_cannot_be_written_keeps_nxlog_from_starting(tmp_path):
    (tmp_path / "in.log").write_text("one\n")
    conf = with_globals(tmp_path, "PidFile %s/no-such-folder/nxlog.pid\n" % tmp_path)
    result = subprocess.run([sys.executable, "-m", "nxlog_stub", conf], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "couldn't open pidfile %s/no-such-folder/nxlog.pid: No such file or directory" \
        % tmp_path in result.stderr
    assert not (tmp_path / "out.log").exists()  # nothing was read


def test_an_unknown_global_directive_or_log_level_is_refused_with_its_line(tmp_path):
    for directive, message in (("PidFil /tmp/x", "unknown directive 'PidFil' outside a block"),
                               ("LogLevel LOUD", "LogLevel takes one of DEBUG, INFO")):
        with pytest.raises(ConfError, match="nxlog.conf:1: %s" % message):
            parse(with_globals(tmp_path, directive + "\n"))
