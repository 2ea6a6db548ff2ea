"""Reading what strangers send: JSON that cannot exhaust the stack, strings that can always be
stored and sent on, and bodies no larger than any route accepts (tests/gateway/test_hostile.py).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The largest body any route reads (a LINE webhook, bot/channels/platform.py); each route keeps
# its own smaller limit. Without this a client could make the gateway buffer gigabytes before the
# route's own check sees the length.
MAX_BODY_BYTES = 1024 * 1024


def valid_text(text: str) -> str:
    """`text` as it can be hashed, stored and sent on: lone UTF-16 surrogates ("\\ud800" in JSON,
    half an emoji) become U+FFFD, since UTF-8 cannot encode them, and NUL characters are dropped,
    since a PostgreSQL text column cannot hold them."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def loads(raw: bytes | str) -> Any:
    """JSON from a request body, or ValueError: not UTF-8, not JSON, or nested too deeply to read.
    Every string in it (keys too) is valid Unicode (valid_text)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("body must be UTF-8 JSON") from None
    except RecursionError:
        raise ValueError("body is nested too deeply") from None
    except ValueError:  # e.g. an integer of more than 4300 digits
        raise ValueError("body must be UTF-8 JSON") from None
    if "\\u" in text:  # only an escape can make a lone surrogate or a NUL
        data = _repaired(data)
    return data


def _repaired(data: Any) -> Any:
    """Applies valid_text to every string, without recursion (the depth is the sender's)."""
    if isinstance(data, str):
        return valid_text(data)
    todo = [data] if isinstance(data, (dict, list)) else []
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            for key in [k for k in node if valid_text(k) != k]:
                node[valid_text(key)] = node.pop(key)
            pairs = list(node.items())
        else:
            pairs = list(enumerate(node))
        for key, value in pairs:
            if isinstance(value, str):
                node[key] = valid_text(value)
            elif isinstance(value, (dict, list)):
                todo.append(value)
    return data


class BodyLimit:
    """Answers 413 to a body larger than MAX_BODY_BYTES: at once when Content-Length says so,
    else as soon as that much has arrived, so nothing larger is ever buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await _too_large(send)
                return
        received, started = 0, False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except _TooLarge:
            if started:
                raise
            await _too_large(send)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    body = json.dumps({"error": "body too large"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
