"""Headers every page and API answer carries: no framing, no sniffing, nothing from elsewhere.

The pages talk only to this gateway. The web chat loads its script and style from files of its
own (bot/static/webchat.js, webchat.css), so no inline code runs on it; the console's pages
still carry theirs inline, so only /console allows that. Console and web chat answers are never
cached: they hold children's words.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = b"content-security-policy"
_POLICY = (
    b"default-src 'self'; script-src 'self'{inline}; style-src 'self'{inline};"
    b" img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self';"
    b" base-uri 'none'; object-src 'none'"
)
STRICT = _POLICY.replace(b"{inline}", b"")
INLINE = _POLICY.replace(b"{inline}", b" 'unsafe-inline'")
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
        policy = INLINE if scope["path"].startswith("/console") else STRICT

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ours = {**HEADERS, CSP: policy}
                headers = [(k, v) for k, v in message.get("headers", []) if k not in ours]
                headers += list(ours.items())
                if private and not any(k == NO_STORE[0] for k, _ in headers):
                    headers.append(NO_STORE)
                if self.hsts:
                    headers.append(HSTS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
