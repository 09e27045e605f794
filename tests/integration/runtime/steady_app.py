"""A service for traffic tests: answers with its replica name, drains on SIGTERM.

On SIGTERM it stops accepting and finishes what it is serving before it exits,
as a well-behaved service does; the mesh has stopped sending it new requests by then.
"""

import http.server
import os
import signal
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/work"):
            time.sleep(0.005)
        body = os.environ.get("DIRIGENT_REPLICA", "?").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = True


def drain(*_: object) -> None:
    def later() -> None:
        time.sleep(0.5)
        server.shutdown()

    threading.Thread(target=later, daemon=True).start()


signal.signal(signal.SIGTERM, drain)
server.serve_forever()
