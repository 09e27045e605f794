"""Two tiny services for the mesh-under-``up`` tests.

``back`` answers ``/hello`` with the caller the mesh vouched for (from
``x-forwarded-client-cert``); ``front`` answers ``/call`` by calling
``$BACK_URL/hello`` with the standard library, which goes through ``HTTP_PROXY``.
"""

import http.server
import os
import sys
import urllib.request


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            body = b"ok"
        elif sys.argv[1] == "back" and self.path == "/hello":
            body = ("hello " + self.headers.get("x-forwarded-client-cert", "nobody")).encode()
        elif sys.argv[1] == "front" and self.path == "/call":
            with urllib.request.urlopen(os.environ["BACK_URL"] + "/hello", timeout=10) as reply:
                body = b"front got: " + reply.read()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
