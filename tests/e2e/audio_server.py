"""A real HTTP server on 127.0.0.1 (ephemeral port) serving a folder, for download tests.

Paths under `/flaky/` answer 503 the first time each is asked for, then serve
the file, so retries can be observed. Every request path is recorded.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]
    refused_once: set[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path.startswith("/flaky/"):
            if self.path not in self.refused_once:
                self.refused_once.add(self.path)
                self.send_error(503, "Service Unavailable")
                return
            self.path = self.path[len("/flaky"):]
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@contextmanager
def serve(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve `folder`; yields (base URL, list of request paths as they arrive)."""
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests, "refused_once": set()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


