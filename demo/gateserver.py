"""A local webhook for the rollout's gates (``rollout.gates``): it answers each POST with 200
and keeps what it was asked, so the demo can show the bot asking it.

A real gate would run a load test (Flagger's loadtester runs ``hey`` against the canary) or
wait for a human sign-off before it answers; this one says yes at once.
"""

from __future__ import annotations

import http.server
import json
import threading


class GateServer:
    """An HTTP server on 127.0.0.1 (a free port) answering every POST with ``answer``.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        asked: the JSON payloads received, oldest first; :meth:`take` empties it.
    """

    def __init__(self, answer: int = 200) -> None:
        self.asked: list[dict] = []
        self.answer = answer
        self._lock = threading.Lock()
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body or b"{}")
                except ValueError:
                    payload = {}
                with gate._lock:
                    gate.asked.append(payload)
                self.send_response(gate.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def take(self) -> list[dict]:
        """The payloads received since the last call."""
        with self._lock:
            taken, self.asked = self.asked, []
        return taken

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
