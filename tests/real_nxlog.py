"""A real NXLog CE 3.1.15 (../shared/nxlog/, built by `make nxlog`) running a configuration in
a process of its own, as a user runs it: the system Python embedded, the system PATH, boto3
(and zstandard, pyarrow) from .nxlog-python/ on PYTHONPATH, and only the AWS_* and NXLOG_S3_*
variables given passed on."""

import os
import signal
import subprocess
import time

from helpers import ROOT

BINARY = os.environ.get("NXLOG_BINARY", "/opt/nxlog-ce/bin/nxlog")
PYTHONPATH = os.environ.get("NXLOG_PYTHONPATH", os.path.join(ROOT, ".nxlog-python"))
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOW_TO_GET_IT = ("`make nxlog` builds it from ../shared/nxlog/ (about 3 minutes) and installs "
                 "boto3 for the system Python into .nxlog-python/; NXLOG_BINARY and "
                 "NXLOG_PYTHONPATH name others")


def missing():
    """Why no real NXLog can run here, or None."""
    if not os.access(BINARY, os.X_OK):
        return "no NXLog at %s: %s" % (BINARY, HOW_TO_GET_IT)
    if not os.path.isdir(os.path.join(PYTHONPATH, "boto3")):
        return "no boto3 for NXLog's Python in %s: %s" % (PYTHONPATH, HOW_TO_GET_IT)
    return None


def fitted_conf(name, folder, **defines):
    """conf/NAME with the values of its `define` lines replaced by DEFINES (what a user fits),
    every other line as it is, written into FOLDER; its path."""
    lines = []
    with open(os.path.join(ROOT, "conf", name)) as handle:
        for line in handle:
            words = line.split()
            if len(words) >= 3 and words[0] == "define" and words[1] in defines:
                line = "define %s %s\n" % (words[1], defines.pop(words[1]))
            lines.append(line)
    assert not defines, "conf/%s has no define %s" % (name, ", ".join(defines))
    path = os.path.join(str(folder), name)
    with open(path, "w") as handle:
        handle.writelines(lines)
    return path


def conf_text(folder, body):
    """A configuration of BODY (modules and routes) with the global directives NXLog needs,
    its files in FOLDER."""
    return ("SpoolDir %(f)s\nCacheDir %(f)s\nPidFile %(f)s/nxlog.pid\nLogFile %(f)s/nxlog.log\n"
            "LogLevel INFO\n" % {"f": folder}) + body


class RealNXLog(object):
    """`nxlog -f -c CONF` with ENV (AWS_* and NXLOG_S3_* settings) on top of a clean
    environment, boto3 from PYTHONPATH. Its own log is LOG_FILE, as the configuration names
    it."""

    def __init__(self, conf, log_file, env, pythonpath=PYTHONPATH):
        self.conf, self.log_file = str(conf), str(log_file)
        self.env = dict(env, PATH=SYSTEM_PATH, PYTHONPATH=str(pythonpath), LANG="C.UTF-8")
        self.process = None

    def start(self):
        self.process = subprocess.Popen([BINARY, "-f", "-c", self.conf], env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def log(self):
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.process.poll() is None

    def wait_for(self, condition, timeout=60, what="the condition"):
        """Waits until CONDITION() is true; AssertionError, with NXLog's log, if NXLog died
        or TIMEOUT seconds passed first."""
        end = time.monotonic() + timeout
        while not condition():
            if not self.alive():
                raise AssertionError("NXLog died (exit status %s) before %s; its log:\n%s"
                                     % (self.process.returncode, what, self.log()[-4000:]))
            if time.monotonic() > end:
                raise AssertionError("%s did not come within %d s; NXLog's log:\n%s"
                                     % (what, timeout, self.log()[-4000:]))
            time.sleep(0.1)

    def exited(self, timeout=30):
        """NXLog's exit status once it ended by itself (it refused to start, say)."""
        return self.process.wait(timeout)

    def stop(self, timeout=60):
        """SIGTERM, as a service manager stops it; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("NXLog did not stop within %d s of SIGTERM" % timeout) from None
