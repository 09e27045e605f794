"""A tiny HTTP service used as a replica in the runtime's integration tests.

GET /ready and /live answer 200; GET /hang makes every later request hang
(a replica that is alive but stuck); the port comes from $PORT.
"""

import http.server
import os
import threading
import time

hung = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/hang":
            hung.set()
        if hung.is_set() and self.path != "/hang":
            time.sleep(3600)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
print(f"listening on {os.environ['PORT']} as {os.environ['DIRIGENT_REPLICA']}", flush=True)
server.serve_forever()
