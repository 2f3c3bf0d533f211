"""A fault-injecting HTTP proxy on 127.0.0.1, in front of an S3 endpoint (moto server).

By a seeded schedule, each request is passed on, or answered 503 SlowDown, or 500
InternalError, or its connection is reset without an answer. The faults happen before the
request reaches S3, so that a test knows what S3 saw; what counts for the scripts is that
they see the errors real S3 gives under load.
"""

import http.client
import http.server
import random
import socketserver
import threading

SLOW_DOWN = (503, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                  b'<Message>Please reduce your request rate.</Message></Error>')
INTERNAL = (500, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                 b'<Message>We encountered an internal error.</Message></Error>')


class FaultProxy(object):
    """Forwards to UPSTREAM (host, port); a share FAULTS of the requests fail, by SEED."""

    def __init__(self, upstream, faults, seed):
        self.upstream, self.faults = upstream, faults
        self.chance = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {"passed": 0, "503": 0, "500": 0, "reset": 0}
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy.pick()
                if fault == "reset":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in ("503", "500"):
                    status, payload = SLOW_DOWN if fault == "503" else INTERNAL
                    self.answer(status, {"Content-Type": "application/xml"}, payload)
                    return
                self.forward(body)

            def forward(self, body):
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {name: value for name, value in self.headers.items()
                           if name.lower() not in ("connection", "keep-alive")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.answer(response.status, {name: value for name, value in response.getheaders()
                                              if name.lower() not in ("connection",
                                                                      "transfer-encoding",
                                                                      "content-length")},
                            payload)
                upstream.close()

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

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def pick(self):
        with self.lock:
            roll = self.chance.random()
            fault = "passed"
            if roll < self.faults:
                fault = self.chance.choice(("503", "500", "reset"))
            self.counts[fault] += 1
            return fault

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
