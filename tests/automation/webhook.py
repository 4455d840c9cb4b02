"""A webhook receiver for the alert tests: an HTTP server on 127.0.0.1 (a free port) in a thread
that records every POST's JSON body, and can be told how to answer the first requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DROP = "drop"  # close the connection without an answer (the client sees a connection error)
HANG = "hang"  # answer nothing until the server stops (the client times out)
PATH = "/hooks/secret-token"


class RecordingWebhook:
    """``script``: how to answer the first requests, in order (DROP, HANG or an HTTP status);
    later ones get 204. ``bodies``: the JSON of every request that was answered 2xx."""

    def __init__(self, script: Sequence[str | int] = ()):
        self.script = list(script)
        self.bodies: list[dict] = []
        self.requests = 0
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def _next(self, body: bytes) -> str | int:
        with self._lock:
            self.requests += 1
            answer = self.script.pop(0) if self.script else 204
            if isinstance(answer, int) and answer < 300:
                self.bodies.append(json.loads(body))
        return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answer = webhook._next(body)
                if answer == DROP:
                    self.close_connection = True
                    return
                if answer == HANG:
                    webhook.released.wait()
                    self.close_connection = True
                    return
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output to the assertions

        return Handler

    def __enter__(self) -> RecordingWebhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
