"""Headers every page and API answer carries: no framing, no sniffing, nothing from elsewhere.

The pages talk only to this gateway. The web chat and the console load their scripts and styles
from files of their own (bot/assets.py: bot/static/webchat.*, bot/static/console/), so no page
runs inline code or style and none is allowed. Console and web chat answers are never cached:
they hold children's words.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = b"content-security-policy"
STRICT = (
    b"default-src 'self'; script-src 'self'; style-src 'self';"
    b" img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self';"
    b" base-uri 'none'; object-src 'none'"
)
HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
}
NO_STORE = (b"cache-control", b"no-store")
# With CONSOLE_SECURE_COOKIE=1 (behind https): browsers use only https here for a year.
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith(("/console", "/webchat"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ours = {**HEADERS, CSP: STRICT}
                headers = [(k, v) for k, v in message.get("headers", []) if k not in ours]
                headers += list(ours.items())
                if private and not any(k == NO_STORE[0] for k, _ in headers):
                    headers.append(NO_STORE)
                if self.hsts:
                    headers.append(HSTS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
