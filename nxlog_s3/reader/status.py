"""`status`: where the reader is, read from its checkpoint."""

from nxlog_s3.common.command import not_found_where_looked
from nxlog_s3.common.objects import utc_text
from nxlog_s3.common.runtime import EXIT_WARNED, SCRIPT, count
from nxlog_s3.reader.checkpoint import CheckpointError
from nxlog_s3.reader.commands import Between, _print_json, _servers_to_read, _unreported

# -- status --

def reader_status(parts):
    """Where the reader is, from its checkpoint (read, not taken: a running reader may hold
    it), and per server how far behind the newest key in the bucket that is."""
    checkpoint = parts.checkpoint
    checkpoint.load(parts.listing.keys_of, lock=False)
    servers = _servers_to_read(parts, report=_unreported)
    if parts.settings.SERVER == "*":
        servers = sorted(set(servers) | set(checkpoint.positions))
    return {"script": SCRIPT, "bucket": parts.settings.BUCKET, "checkpoint": checkpoint.path,
            "exists": checkpoint.exists(), "in_use": checkpoint.in_use(),
            "off_scheme_keys": list(checkpoint.other_keys),
            "servers": [_server_status(parts, server) for server in servers]}


def _server_status(parts, server):
    position = parts.checkpoint.positions.get(server)
    newest_read = None if position is None else position.newest
    newest, waiting = None, 0
    horizon = parts.clock.time() + parts.settings.MAX_AHEAD
    start = None if position is None else position.window_start()
    for item in Between(parts, server, start, None, report=_unreported):
        if position is None or not position.done(item):
            waiting += 1
        if item.epoch <= horizon and (newest is None or item.epoch > newest[0]):
            newest = item.epoch, item.key
    status = {"server": server, "newest_read": None if newest_read is None else
              utc_text(newest_read), "newest_in_bucket": None if newest is None else
              utc_text(newest[0]), "newest_key": None if newest is None else newest[1],
              "waiting": waiting, "lag_seconds": None, "retrying": {}, "set_aside": []}
    if newest is not None and newest_read is not None:
        status["lag_seconds"] = max(0, newest[0] - newest_read)
    if parts.settings.COORDINATION == "s3":
        status["lease"] = parts.checkpoint.leases.get(server)
    if position is not None:
        status["retrying"] = {key: attempt[0] for key, attempt in position.attempts.items()}
        status["set_aside"] = [{"key": key, "why": why, "time": when}
                               for key, (why, when) in position.set_aside.items()]
    return status


def _status_command(parts, arguments):
    """`status`: the reader's position and lag per server, and what it set aside (PARTS:
    what reads the bucket)."""
    try:
        status = reader_status(parts)
    except CheckpointError as exc:
        parts.log.error(str(exc))
        return EXIT_WARNED
    if arguments.json:
        _print_json(status)
    else:
        _print_status(status)
    if not status["exists"] and not status["in_use"]:
        parts.log.warning(not_found_where_looked(
            "checkpoint", status["checkpoint"], "no reader with these settings has read "
            "anything", "CHECKPOINT"))
        return EXIT_WARNED
    return 0


def _print_status(status):
    print("%s: checkpoint %s%s" % (status["script"], status["checkpoint"], {
        (True, True): " (in use by a running reader)", (True, False): "",
        (False, False): " (no such file)",
        (False, True): " (not written yet by the running reader)"}[
            status["exists"], status["in_use"]]))
    for server in status["servers"]:
        _print_server_status(server)
    if status["off_scheme_keys"]:
        print("keys off the scheme, not read: %s" % ", ".join(
            repr(key) for key in status["off_scheme_keys"]))


def _print_server_status(server):
    read = "read up to %s" % server["newest_read"] if server["newest_read"] else \
        "nothing read yet"
    if server["newest_in_bucket"] is None:
        bucket = "no object in the bucket from there on"
    else:
        bucket = "newest in the bucket %s (%r)%s; %s waiting" % (
            server["newest_in_bucket"], server["newest_key"], "" if server["lag_seconds"] is
            None else ": %d s behind" % server["lag_seconds"], count(server["waiting"],
                                                                    "object"))
    print("%s: %s; %s" % (server["server"], read, bucket))
    if "lease" in server:
        print("  %s" % _lease_text(server["lease"]))
    for key, attempts in sorted(server["retrying"].items()):
        print("  being tried again: %r (%s so far)" % (key, count(attempts, "failed attempt")))
    for entry in server["set_aside"]:
        print("  set aside at %s: %r: %s" % (entry["time"], entry["key"], entry["why"]))


def _lease_text(lease):
    """A server's lease with COORDINATION=s3, as `status` prints it."""
    if lease is None:
        return "no reader has taken it yet"
    saved = "position saved at %s" % lease["saved"]
    if lease["holder"] is None:
        return "free (handed on), %s: the next reader's turn takes it" % saved
    beat = lease["beat_age_seconds"]
    if lease["alive"]:
        return "held by %s (its last beat %d s ago), %s" % (lease["holder"], beat, saved)
    return "held by %s, gone (%s), %s: another reader takes it over" % (
        lease["holder"], "no beat found" if beat is None else "its last beat %d s ago" % beat,
        saved)
