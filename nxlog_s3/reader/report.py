"""What the reader tells of itself: where it stops, and its metrics."""

from nxlog_s3.common.objects import utc_text
from nxlog_s3.common.runtime import count

STOP_SERVERS_SHOWN = 3  # servers the line logged at the stop names (SERVER=* may be many)


def report_place(checkpoint, log):
    """Says in NXLog's log where the reader stops: the next start goes on from there."""
    if not checkpoint.loaded:
        return
    read = ["%s read up to %s" % (server, utc_text(position.newest))
            for server, position in sorted(checkpoint.positions.items())
            if position.newest is not None]
    retrying = sum(len(position.attempts) for position in checkpoint.positions.values())
    log.info("stops; the next start goes on from %s (%s%s)" % (
        checkpoint.place(), ", ".join(read[:STOP_SERVERS_SHOWN] + (
            [count(len(read) - STOP_SERVERS_SHOWN, "more server")]
            if len(read) > STOP_SERVERS_SHOWN else [])) or "nothing read yet",
        "; %s to be tried again" % count(retrying, "object") if retrying else ""))
    if checkpoint.unsaved:
        log.warning("stops before its checkpoint %s could be written: the events of the "
                    "last object read may be posted again" % checkpoint.path)


def reader_samples(reader):
    """The reader's metrics, for METRICS_FILE (see Metrics). A server's lag is 0 when
    its last turn found nothing more to read, else the age of the newest object read."""
    bucket, now, prefix = reader.settings.BUCKET, reader.clock.time(), "nxlog_s3_reader_"
    samples = []
    for server, position in sorted(reader.checkpoint.positions.items()):
        labels = {"bucket": bucket, "server": server}
        objects, events, size = reader.read.get(server, (0, 0, 0))
        figures = [("objects_total", "counter", "objects read", objects),
                   ("events_total", "counter", "events posted to NXLog", events),
                   ("bytes_total", "counter", "bytes of the objects read, as stored",
                    size),
                   ("set_aside_objects", "gauge", "objects set aside (not read), as the "
                    "checkpoint remembers them", len(position.set_aside))]
        if position.newest is not None:
            lag = 0 if reader.caught_up.get(server) else max(0, now - position.newest)
            figures += [("newest_read_timestamp_seconds", "gauge", "key time of the newest "
                         "object read", position.newest),
                        ("lag_seconds", "gauge", "0 once all is read, else how old the "
                         "newest object read is", lag)]
        samples += [(prefix + name, kind, summary, labels, value)
                    for name, kind, summary, value in figures]
    samples += [(prefix + name, kind, summary, labels, value) for name, kind, summary,
                labels, value in reader.checkpoint.samples({"bucket": bucket}) +
                reader.polls.samples({"bucket": bucket})]
    return samples + [(prefix + "errors_total", "counter", "read_data calls that failed, "
                       "by kind", {"bucket": bucket, "kind": kind}, number)
                      for kind, number in sorted(reader.errors.items())]
