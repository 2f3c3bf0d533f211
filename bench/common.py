"""What the benchmarks share: moto server on 127.0.0.1, sample log lines, peak RSS."""

import contextlib
import os
import random
import resource
import socket
import subprocess
import sys
import time
import urllib.request

PATHS = ("/api/v1/items", "/api/v1/orders", "/static/app.js", "/login", "/search", "/health")
AGENTS = ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
          "curl/8.5.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15")


def peak_rss_mb():
    """This process's peak resident memory. Linux's VmHWM, not getrusage's maxrss: a process
    started by exec keeps the maxrss of the one it replaced."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emulate_round_trip(client):
    """With BENCH_RTT_MS set (--rtt), every request of CLIENT waits that long before it is
    sent, as a request to S3 over a real network waits for its answer: what 127.0.0.1 cannot
    show, and what fetching or uploading several objects at a time is for. The wait holds no
    CPU and no lock, like a network's."""
    delay = float(os.environ.get("BENCH_RTT_MS") or 0) / 1000.0
    if delay:
        client.meta.events.register("before-send.s3", lambda **kwargs: time.sleep(delay))
    return client


def sample_lines(count=4096, seed=7):
    """Access-log lines of about 200 bytes with the variety of real ones (addresses, ids,
    sizes): 4096 of them span far more than gzip's 32 KiB window, so repeats cannot flatter
    the compression."""
    chance = random.Random(seed)
    return ["10.%d.%d.%d - - [27/Nov/2026:10:%02d:%02d +0000] \"GET %s/%d?req=%016x HTTP/1.1\" "
            "%d %d \"-\" \"%s\"" % (
                chance.randrange(256), chance.randrange(256), chance.randrange(256),
                chance.randrange(60), chance.randrange(60), chance.choice(PATHS),
                chance.randrange(10**6), chance.getrandbits(64),
                chance.choice((200, 200, 200, 304, 404, 500)), chance.randrange(100, 90000),
                chance.choice(AGENTS)) for _ in range(count)]


def add_endpoint_options(parser):
    parser.add_argument("--endpoint", help="an S3 endpoint on 127.0.0.1 that is running "
                        "already (default: start moto server)")
    parser.add_argument("--key", default="test", help="access key and secret for --endpoint")
    parser.add_argument("--rtt", type=float, default=0,
                        help="milliseconds of network round trip added to every request")


@contextlib.contextmanager
def endpoint(args):
    """(URL, access key) of the S3 endpoint to measure: --endpoint, or a moto server started
    for the block."""
    if args.endpoint:
        server, url, key = None, args.endpoint, args.key
    else:
        (server, url), key = start_moto(), "bench"
    print("S3 endpoint: %s%s" % (url if server is None else "moto server, " + url,
                                 ", %g ms added to every request" % args.rtt if args.rtt else ""))
    try:
        yield url, key
    finally:
        if server is not None:
            server.terminate()
            server.wait()


def start_moto():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = "http://127.0.0.1:%d" % port
    for _ in range(100):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return server, endpoint
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto server did not start")
