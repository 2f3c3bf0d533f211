"""A fault-injecting HTTP proxy on 127.0.0.1, in front of an S3 endpoint (moto server).

By a seeded schedule, each request is passed on, or answered 503 SlowDown, or 500
InternalError, or its connection is reset without an answer, or it stalls: it reaches S3,
but its answer is held back past the client's read timeout and never sent, so the client
cannot know whether S3 took it. `outage(seconds)` takes the endpoint down for a stretch (new
connections refused, open ones reset) and brings it back. With `tls`, the proxy speaks HTTPS
with the certificate given. What counts for the scripts is that they see what real S3 and a
real network give under load.
"""

import http.client
import http.server
import random
import socketserver
import ssl
import threading
import time

SLOW_DOWN = (503, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                  b'<Message>Please reduce your request rate.</Message></Error>')
INTERNAL = (500, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                 b'<Message>We encountered an internal error.</Message></Error>')
FAULTS = ("503", "500", "reset", "stall")


class FaultProxy(object):
    """Forwards to UPSTREAM (host, port); a share FAULTS of the requests fail, by SEED, with
    one of KINDS. A stalled answer is held STALL seconds (more than the client waits)."""

    def __init__(self, upstream, faults=0.0, seed=0, kinds=FAULTS, stall=2.0, tls=None):
        self.upstream, self.faults, self.kinds, self.stall = upstream, faults, kinds, stall
        self.chance = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(("passed", "refused") + FAULTS, 0)
        self.down = threading.Event()
        self.tls = tls
        self.server = self._serve(0)
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http",
                                          self.server.server_address[1])

    def _serve(self, port):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def read_body(self):
                """The request's body as it came, chunked (botocore over HTTPS) or not."""
                if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                raw = b""
                while True:
                    line = self.rfile.readline()
                    raw += line
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while line not in (b"\r\n", b"\n", b""):  # trailers, then the end
                            line = self.rfile.readline()
                            raw += line
                        return raw
                    raw += self.rfile.read(size + 2)

            def handle_one(self):
                body = self.read_body()
                fault = proxy.pick()
                if fault in ("reset", "refused"):
                    self.close_connection = True
                    self.connection.close()
                elif fault in ("503", "500"):
                    status, payload = SLOW_DOWN if fault == "503" else INTERNAL
                    self.answer(status, {"Content-Type": "application/xml"}, payload)
                elif fault == "stall":
                    self.forward(body)  # S3 does it...
                    time.sleep(proxy.stall)  # ...but the client gives up waiting
                    self.close_connection = True
                    self.connection.close()
                else:
                    self.answer(*self.forward(body))

            def forward(self, body):
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {name: value for name, value in self.headers.items()
                           if name.lower() not in ("connection", "keep-alive")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                upstream.close()
                return response.status, {name: value for name, value in response.getheaders()
                                         if name.lower() not in ("connection", "content-length",
                                                                 "transfer-encoding")}, payload

            def answer(self, status, headers, payload):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # a client that gave up on a stalled or reset request: what we wanted

        server = Server(("127.0.0.1", port), Handler)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        return server

    def pick(self):
        with self.lock:
            fault = "passed"
            if self.down.is_set():
                fault = "refused"
            elif self.chance.random() < self.faults:
                fault = self.chance.choice(self.kinds)
            self.counts[fault] += 1
            return fault

    def outage(self, seconds, clock=time):
        """The endpoint goes away for SECONDS on CLOCK (connections refused, open ones
        reset), then comes back on the same address. Returns at once; the outage runs in a
        thread."""
        self.down.set()
        self._stop()
        end = clock.monotonic() + seconds

        def come_back():
            while clock.monotonic() < end:
                time.sleep(0.01)
            self.server = self._serve(self.server.server_address[1])
            self._start()
            self.down.clear()
        threading.Thread(target=come_back, daemon=True).start()

    def _start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        self._start()
        return self

    def __exit__(self, *exc):
        while self.down.is_set():
            time.sleep(0.1)
        self._stop()
