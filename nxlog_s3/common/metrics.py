"""METRICS_FILE: Prometheus metrics in node_exporter's textfile format."""

import collections
import os
import threading

from nxlog_s3.common.files import hold_lock, lock_holder
from nxlog_s3.common.runtime import SCRIPT
from nxlog_s3.common.settings import ConfigError

METRICS_EVERY = 5.0  # seconds between two rewrites of METRICS_FILE
METRICS_MODE = 0o644  # node_exporter runs as another user; the file holds counts, no data


def _label_value(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics(object):
    """METRICS_FILE, for node_exporter's textfile collector: what SAMPLES() gives, (name,
    type, help, labels, value) tuples, each labelled with the script's name too, in
    Prometheus' text format, rewritten atomically every METRICS_EVERY seconds by a thread of
    its own, and once more at stop. Nothing at all when the setting is empty."""

    def __init__(self, path, samples, clock, disk, log):
        self.path, self.samples, self.clock, self.disk, self.log = (
            path and os.path.abspath(path), samples, clock, disk, log)
        self.stopping = threading.Event()
        self.thread = None
        self.lock_fd = None  # held while this script lives: no other writes the file

    def check(self):
        """Raises ConfigError unless METRICS_FILE's folder exists and this process may write
        there (node_exporter's folder is made by whoever installs it, not by this script)."""
        folder = os.path.dirname(self.path or "")
        if self.path and not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):
            raise ConfigError("%s: cannot write METRICS_FILE=%s: the folder %s does not exist, "
                              "or this process (the user NXLog runs as) may not write there"
                              % (SCRIPT, self.path, folder))

    def claim(self):
        """What the script's start does first: check(), then a lock (a hidden file beside
        METRICS_FILE, which node_exporter does not read) that refuses a second writer of the
        file, an instance of this NXLog or another process: each would hide the other's
        figures."""
        self.check()
        if not self.path:
            return
        folder, name = os.path.split(self.path)
        lock = os.path.join(folder, ".%s.lock" % name)
        try:
            self.lock_fd = hold_lock(lock)
        except OSError as exc:
            raise ConfigError("%s: cannot lock METRICS_FILE=%s: %s" % (SCRIPT, self.path, exc)
                              ) from None
        if self.lock_fd is None:
            raise ConfigError("%s: METRICS_FILE=%s is written by %s: give each instance its "
                              "own METRICS_FILE (an instance's: NXLOG_S3_<INSTANCE>_"
                              "METRICS_FILE)" % (SCRIPT, self.path, lock_holder(lock)))

    def start(self):
        """Writes the file once (it is there as soon as the script has started), then every
        METRICS_EVERY seconds. The script's start has made claim() before anything else."""
        if self.path:
            self.write()
            self.thread = threading.Thread(target=self._run, daemon=True,
                                           name="%s metrics" % SCRIPT)
            self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            self.clock.sleep(METRICS_EVERY, self.stopping)
            self.write()

    def write(self):
        try:
            self.disk.write_atomically(self.path, self.text().encode(), sync=False,
                                       mode=METRICS_MODE)
        except OSError as exc:
            self.log.limited("metrics", self.log.warning, "cannot write METRICS_FILE %s: %s"
                             % (self.path, exc))

    def text(self):
        """The samples in Prometheus' text format: each metric's HELP and TYPE, then its
        samples, one metric after the other."""
        families = collections.OrderedDict()
        for name, kind, summary, labels, value in self.samples():
            family = families.setdefault(name, ["# HELP %s %s" % (name, summary),
                                                "# TYPE %s %s" % (name, kind)])
            labels = dict(labels, script=SCRIPT)  # the file's name: it names an instance
            family.append("%s{%s} %s" % (name, ",".join(
                '%s="%s"' % (label, _label_value(labels[label])) for label in sorted(labels)),
                repr(float(value)) if isinstance(value, float) else int(value)))
        return "".join(line + "\n" for family in families.values() for line in family)

    def stop(self):
        """Writes the last figures, and lets the file go, as the end of the process would."""
        if self.thread is not None:
            self.stopping.set()
            self.thread.join()
            self.thread = None
            self.write()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
