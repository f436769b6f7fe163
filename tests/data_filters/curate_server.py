"""A loopback HTTP server (127.0.0.1, ephemeral port) serving the test catalogue."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from curate_catalogue import Case


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # img2dataset opens many connections at once; the default 5 drops some
    daemon_threads = True


class LoopbackServer:
    """Serves ``Case`` routes; counts requests per path; start/stop from a fixture."""

    def __init__(self, cases: list[Case]) -> None:
        self.routes: dict[str, Case] = {}
        for case in cases:  # a duplicate row repeats a URL: the first case defines the route
            if case.url_override is None:
                self.routes.setdefault(f"/{case.name}", case)
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def total_hits(self) -> int:
        with self._lock:
            return sum(self.hits.values())

    def _record(self, path: str) -> None:
        with self._lock:
            self.hits[path] += 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._record(self.path)
                case = server.routes.get(self.path)
                if case is None:
                    self.send_error(404)
                    return
                if case.delay_s:
                    time.sleep(case.delay_s)
                if case.redirect_to is not None:
                    self.send_response(case.status)
                    self.send_header("Location", case.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if case.status != 200:
                    self.send_error(case.status)
                    return
                self.send_response(200)
                self.send_header("Content-Type", case.content_type)
                self.send_header("Content-Length", str(len(case.body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up (timeout)
                    self.wfile.write(case.body)

            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                return

        return Handler
