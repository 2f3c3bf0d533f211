"""Runs the reliability suite and writes docs/RELIABILITY.md from what it reports.

    python tests/reliability_report.py [--soak]     (make reliability, make soak)

The scenarios (tests/test_reliability.py) report their figures as they run; the bad-input,
bad-configuration and security tests report pass or fail. Nothing in the document is written
by hand: run this again to bring it up to date.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from hostile import HOSTILE  # noqa: E402

SUITES = [("tests/test_reliability.py", "Scenarios: faults, outage, SIGKILL, full disk, clock, "
           "late objects, hostile keys"),
          ("tests/test_never_miss.py", "Never passed over in silence: each case"),
          ("tests/test_never_miss_generated.py", "Never passed over in silence, generated "
           "(hypothesis)"),
          ("tests/test_hostile.py", "Bad input, generated (hypothesis)"),
          ("tests/test_hostile_bucket.py", "A hostile bucket, object by object, under the stub"),
          ("tests/test_real_nxlog.py", "Under a real NXLog CE 3.1.15: a hostile bucket, each "
           "case and generated, the reader's memory under the bombs, and stops while the "
           "scripts' threads are busy"),
          ("tests/test_settings.py", "Bad configuration, every setting"),
          ("tests/test_security.py", "Security")]
COLUMNS = [("scenario", "scenario"), ("side", "side"), ("events_in", "events in"),
           ("events_out", "events out"), ("lost", "lost"), ("duplicated", "duplicated"),
           ("overwritten", "overwritten objects"), ("reported", "objects named in a warning"),
           ("errors_reported", "errors reported")]


# make test runs these as well: the report has no figures of theirs, and CI runs them once.
NOT_IN_THE_REPORT = ["tests/test_real_nxlog.py::" + name for name in (
    "test_both_conf_files_move_every_line_once_and_in_order",
    "test_a_bad_setting_keeps_nxlog_from_starting",
    "test_a_stop_while_the_spool_is_full_is_prompt_and_loses_nothing",
    "test_a_stop_ends_the_scripts_threads_before_nxlog_clears_its_interpreter")]


def run_suite(soak, results, junit):
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--results", results, "--junitxml", junit] + [path for path, _ in SUITES]
    for node in NOT_IN_THE_REPORT:
        command += ["--deselect", node]
    if soak:
        command.append("--soak")
    started = time.monotonic()
    code = subprocess.call(command, cwd=ROOT)
    return code, time.monotonic() - started


def outcomes(junit):
    """{test file: [(test name, 'passed' | 'failed' | 'skipped: why')]}"""
    found = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "FAILED"
            elif child.tag == "skipped":
                outcome = "skipped: %s" % child.get("message", "")
        found.setdefault(path, []).append((case.get("name"), outcome))
    return found


def table(rows):
    lines = ["| %s |" % " | ".join(title for _, title in COLUMNS),
             "|%s" % "".join(" --- |" if name in ("scenario", "side") else " ---: |"
                             for name, _ in COLUMNS)]
    for row in rows:
        lines.append("| %s |" % " | ".join(f"{row[name]:,}" if isinstance(
            row.get(name), int) else str(row.get(name, "")) for name, _ in COLUMNS))
    return "\n".join(lines)


def versions():
    return ", ".join("%s %s" % (name, metadata.version(name))
                     for name in ("boto3", "botocore", "moto", "hypothesis"))


def bomb_figures():
    """What tests/programs/bomb_rss.py measures: the bombs alone, then with one event just
    under MAX_EVENT_BYTES (16 MiB) as well."""
    figures = []
    for extra in ([], ["--event", "15"]):
        with tempfile.TemporaryDirectory() as work:
            os.chmod(work, 0o700)
            result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "programs",
                                                                  "bomb_rss.py")] + extra,
                                    cwd=work, capture_output=True, text=True, timeout=600)
        figures.append(json.loads(result.stdout) if result.returncode == 0 else
                       {"error": result.stderr[-500:]})
    return figures


def shortened(fields):
    """FIELDS with each long text as its start and its length."""
    return {name: "%s... (%d characters)" % (value[:8], len(value))
            if isinstance(value, str) and len(value) > 60 else value
            for name, value in fields.items()}


def hostile_table(tests, bombs):
    """Each case of tests/hostile.py: what the reader does, and whether the tests found it
    so under the stub and under a real NXLog."""
    def outcome(path, test, case):
        name = "%s[%s]" % (test, case)
        return next((result for found, result in tests.get(path, []) if found == name),
                    "not run")
    lines = ["| object in the bucket | what the reader does | under the stub | under a real "
             "NXLog |", "| --- | --- | --- | --- |"]
    for case, (_, what, fields) in sorted(HOSTILE.items()):
        does = ("posts its events as NXLog can take them: %s; one warning names the object "
                "and the field" % json.dumps(shortened(fields), ensure_ascii=True) if fields else
                "reads it" if what == "read" else
                "sets it aside: an error names it and why, `status` lists it")
        lines.append("| %s | %s | %s | %s |" % (case, does, outcome(
            "tests/test_hostile_bucket.py",
            "test_a_hostile_object_is_read_as_nxlog_takes_it_or_set_aside_by_name", case),
            outcome("tests/test_real_nxlog.py",
                    "test_no_hostile_object_crashes_a_real_nxlog_nor_holds_back_the_next",
                    case)))
    lines += ["", "Each object lies between two good ones (and, under the stub, beside another "
              "server's): the one after it comes, in the same call where time allows, and no "
              "read_data call runs past MAX_SECONDS_PER_CALL + 1 s. Other failures (a GET "
              "that answers 500 every time, a body cut short, a 404 after the listing, a "
              "MemoryError, a RecursionError) set the object aside after MAX_ATTEMPTS while "
              "every other is read; an S3 that fails every GET sets nothing aside. See the "
              "tests below.", "", "Peak RSS of a reader process (the stub, moto in the same "
              "process, pyarrow loaded) reading every bomb above (`tests/programs/"
              "bomb_rss.py`):", ""]
    for label, figure in zip(("the bombs", "the bombs and one event of 15 MiB"), bombs):
        lines.append("- %s: %s" % (label, "%s MB at the peak, %s MB before reading; the "
                                   "object after them read: %s; longest read_data call %s s"
                                   % (figure["peak_rss_mb"], figure["rss_before_reading_mb"],
                                      figure["after"], figure["longest_call_s"])
                                   if "error" not in figure else "failed: " + figure["error"]))
    return "\n".join(lines)


def document(rows, tests, code, seconds, soak, bombs):
    failed = [name for results in tests.values() for name, outcome in results
              if outcome == "FAILED"]
    verdict = ("**All %d tests passed.**" % sum(len(results) for results in tests.values())
               if code == 0 and not failed else
               "**FAILED (pytest exit code %d): %s**" % (code, ", ".join(failed) or "see log"))
    parts = [
        "# Reliability: what was tried, and what survived",
        "",
        "Generated by `make %s` (`python tests/reliability_report.py%s`) on %s, in %d s, "
        "on %s (%d cores), Python %s; %s. Do not edit by hand: run it again." % (
            "soak" if soak else "reliability", " --soak" if soak else "",
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), seconds,
            platform.platform(terse=True), os.cpu_count(), platform.python_version(),
            versions()),
        "",
        verdict,
        "",
        "## Scenarios",
        "",
        "Each scenario drives s3_write.py and s3_read.py through the stub, as NXLog calls "
        "them, over HTTP against moto server on 127.0.0.1 behind a fault-injecting proxy "
        "(`tests/faults.py`: 503 SlowDown, 500 InternalError, connection resets, answers held "
        "past the client's timeout after S3 acted, outages), in a bucket with versioning on, "
        "so that an overwritten object would show as a second version. *Events in*: events "
        "whose `write_data` returned (writer), or events stored (reader). *Duplicated*: "
        "events stored or posted more than once: after a SIGKILL, the writer may store again "
        "the one event whose `write_data` had not returned, and the reader may post again "
        "the events of the object it was reading. *Errors reported*: warnings and errors the "
        "script logged (a lasting problem is logged once a minute).",
        "",
        table(rows) if rows else "No scenario reported: see the test log.",
        "",
        "## A hostile bucket",
        "",
        hostile_table(tests, bombs),
        "",
        "## Every test of the suite",
        "",
    ]
    for path, title in SUITES:
        results = tests.get(path, [])
        passed = sum(1 for _, outcome in results if outcome == "passed")
        parts += ["### %s (`%s`): %d of %d passed" % (title, path, passed, len(results)), ""]
        parts += ["- %s: %s" % (name.replace("_", " ").replace("test ", "", 1), outcome)
                  for name, outcome in results]
        parts.append("")
    return "\n".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak", action="store_true", help="a million events, 100 kills")
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "RELIABILITY.md"))
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        results, junit = os.path.join(work, "results.jsonl"), os.path.join(work, "junit.xml")
        code, seconds = run_suite(arguments.soak, results, junit)
        rows = []
        if os.path.exists(results):
            with open(results) as handle:
                rows = [json.loads(line) for line in handle]
        tests = outcomes(junit) if os.path.exists(junit) else {}
    bombs = bomb_figures()
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as handle:
        handle.write(document(rows, tests, code, seconds, arguments.soak, bombs))
    print("wrote %s" % arguments.output)
    return code


if __name__ == "__main__":
    sys.exit(main())
