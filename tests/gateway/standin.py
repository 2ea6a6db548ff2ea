"""A local stand-in of a platform's HTTP API: records every request and answers from handlers.

The real SDKs are pointed at it through their base-URL settings; tests then assert exactly what
was sent. Handlers map (method, path) to a function that returns (status, JSON body); anything
unhandled answers 200 {}. A handler answering DROP closes the connection without a response: the
request arrived, its answer was lost.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[["Call"], tuple[int, Any]]
DROP = -1  # the status that answers nothing

# LINE calls that show a chat's state and send no message: the loading animation, the read mark.
LINE_LOADING = "/v2/bot/chat/loading/start"
LINE_MARK_READ = "/v2/bot/chat/markAsRead"
LINE_STATUS = (LINE_LOADING, LINE_MARK_READ)


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class StandIn:
    def __init__(self, port: int = 0) -> None:
        self.calls: list[Call] = []
        self.handlers: dict[tuple[str, str], Handler] = {}
        self._lock = threading.Lock()
        standin = self

        class RequestHandler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                call = Call(self.command, self.path, dict(self.headers), self.rfile.read(length))
                with standin._lock:
                    standin.calls.append(call)
                handler = standin.handlers.get((self.command, self.path.split("?")[0]))
                status, body = handler(call) if handler else (200, {})
                if status == DROP:
                    self.close_connection = True
                    return
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), RequestHandler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()

    def line_env(self, secret: str, token: str) -> dict[str, str]:
        """The gateway's LINE settings that send both of LINE's APIs here."""
        return {
            "LINE_CHANNEL_SECRET": secret,
            "LINE_CHANNEL_ACCESS_TOKEN": token,
            "LINE_API_BASE_URL": self.url,
            "LINE_DATA_API_BASE_URL": self.url + "/data",
        }

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    def requests(self, path_prefix: str = "") -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.startswith(path_prefix)]

    def line_status(self) -> list[Call]:
        """LINE's loading animations and read marks, in order."""
        return [c for c in self.requests() if c.path in LINE_STATUS]

    def without_line_status(self) -> list[Call]:
        """Every recorded call except LINE's loading animations and read marks."""
        return [c for c in self.requests() if c.path not in LINE_STATUS]

    def answer_line_status(self, status: int | None = None) -> None:
        """LINE's answers to the loading animation (202) and the read mark (200), or `status`
        to both, to see that a reply goes out all the same."""
        self.handlers[("POST", LINE_LOADING)] = lambda call: (status or 202, {})
        self.handlers[("POST", LINE_MARK_READ)] = lambda call: (status or 200, {})

    def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float = 30) -> list[Call]:
        """Polls the recorded calls until `predicate` holds (events are handled after the ack)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.requests()
            if predicate(calls):
                return calls
            time.sleep(0.05)
        raise AssertionError(f"stand-in: condition not met in {timeout}s; calls: {self.calls}")


class LinePushes:
    """LINE's push endpoint as it treats X-Line-Retry-Key: a request under a key already accepted
    is refused with 409 and not delivered again. `drop` answers that many requests with nothing
    (accepted or refused, but the answer lost)."""

    def __init__(self, drop: int = 0) -> None:
        self.drop = drop
        self.keys: list[str | None] = []  # the retry key of every request, in order
        self.delivered: list[Any] = []  # what reached the user
        self._accepted: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, call: Call) -> tuple[int, Any]:
        key = call.headers.get("X-Line-Retry-Key")
        with self._lock:
            self.keys.append(key)
            if key is not None and key in self._accepted:
                answer: tuple[int, Any] = (409, {"message": "The retry key is already accepted"})
            else:
                if key is not None:
                    self._accepted.add(key)
                self.delivered.append(call.json)
                answer = (200, {"sentMessages": [{"id": "1", "quoteToken": "q"}]})
            if self.drop:
                self.drop -= 1
                return DROP, None
        return answer
