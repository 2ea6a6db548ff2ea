"""Talks to Rasa's REST channel; any failure becomes RasaUnavailable so the router can fall back.

Rasa answers a few turns a second per core, and a turn it is given while full only makes every
other turn slower: past its capacity, each waits longer than `RASA_TIMEOUT_S`, the gateway gives
up, and Rasa's work is thrown away, so every child gets the fallback (`make bench` at 200
conversations showed exactly that). So at most `RASA_MAX_IN_FLIGHT` turns are at Rasa at once;
the others wait their turn, first come first served. A turn that cannot start within half of
`RASA_TIMEOUT_S` gets the fallback at once instead of after the whole timeout, and one that
starts has the rest of it: a child waits at most `RASA_TIMEOUT_S` either way. A turn whose child
is told to wait (bot/holding.py) has a longer `patience_s` instead, the same way; a turn sent
`first` (a child in a handoff or marked urgent) goes ahead of every waiting turn (bot/slots.py).

Several Rasa servers (RASA_URL lists them; `make run` starts two, one per core): each child
always goes to the same one, chosen by a hash of the sender that every gateway replica computes
alike, so one child's turns meet one in-memory lock store; the children of a server known to be
down, or found refusing connections, go to the next one (the tracker store is shared, so that
server knows the conversation). A turn whose server dropped the connection without an answer,
closed or reset (it died mid-turn: killed, out of memory, restarted), goes to the next one too: a
child's real answer is worth the rare repeated message in Rasa's tracker, if the dead server had
saved it already.
A turn that failed otherwise (an error, the timeout) is not sent again.

The circuit breaker: while Rasa or the action server is known to be down (bot/health.py probes
them every few seconds), a turn is not sent at all and gets the fallback at once, instead of every
child waiting out `RASA_TIMEOUT_S` at a dead or hung Rasa. It closes by itself when the probes
find both up again.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

from bot.config import rasa_parts
from bot.health import Health
from bot.message import Button, Outgoing
from bot.slots import Slots


class RasaUnavailable(Exception):
    """Rasa did not give a usable answer in time (down, error, timeout, bad body)."""


@dataclass
class _Server:
    name: str  # its part in bot/health.py
    url: str
    slots: Slots


class _Refused(Exception):
    """The server took no connection, or dropped it without an answer: try the next one."""


class RasaClient:
    """An open connection pool to Rasa for the app's life (`async with`). aiohttp rather than
    httpx, which the rest of the gateway uses: this call is on every turn, and aiohttp's request
    costs about 1.5 ms less here (make bench)."""

    def __init__(
        self,
        base_urls: tuple[str, ...],
        timeout_s: float,
        max_in_flight: int = 8,
        health: Health | None = None,
    ) -> None:
        self._servers = [
            _Server(
                name,
                url.rstrip("/") + "/webhooks/rest/webhook",
                Slots(max_in_flight),
            )
            for name, url in zip(rasa_parts(len(base_urls)), base_urls, strict=True)
        ]
        self._timeout = timeout_s
        self._health = health
        self._at: dict[str, str] = {}  # sender -> the server their turn is at (`down`)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RasaClient:
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()

    async def down(self, sender: str) -> None:
        """Returns once the sender's turn can get no answer: the breaker is open, or the server
        it is at is known down (at once while so); never without `health`."""
        if self._health is None:
            await asyncio.get_running_loop().create_future()
        while self._health.down() is None and self._health.usable(
            self._at.get(sender) or self._order(sender)[0].name
        ):
            await self._health.probed()

    def full(self, sender: str) -> bool:
        """Every slot of the sender's server is taken: a turn sent now waits its turn."""
        return self._order(sender)[0].slots.full()

    async def send(
        self,
        sender: str,
        text: str,
        input_channel: str,
        metadata: dict[str, Any],
        patience_s: float | None = None,
        first: bool = False,
    ) -> list[Outgoing]:
        """Rasa's answer within `patience_s` (RASA_TIMEOUT_S unless given), else RasaUnavailable."""
        if self._http is None:
            raise RuntimeError("RasaClient is used inside `async with` only")
        body = {
            "sender": sender,
            "message": text,
            "input_channel": input_channel,
            "metadata": metadata,
        }
        down = self._health.down() if self._health is not None else None
        if down is not None:
            self._health.turn_refused()
            raise RasaUnavailable(f"{down} is down")
        started = time.monotonic()
        try:
            for server in self._order(sender):
                self._at[sender] = server.name
                try:
                    answer = await self._send(
                        server, body, started, patience_s or self._timeout, first
                    )
                except _Refused:
                    continue
                if self._health is not None:
                    self._health.turn_answered(server.name)
                return answer
            raise RasaUnavailable("refused")
        except RasaUnavailable:
            if self._health is not None:
                self._health.turn_failed()
            raise
        finally:
            self._at.pop(sender, None)

    def _order(self, sender: str) -> list[_Server]:
        """The sender's own server first, then the next ones; those known to be down last."""
        first = home(sender, len(self._servers))
        ring = self._servers[first:] + self._servers[:first]
        if self._health is None:
            return ring
        return sorted(ring, key=lambda server: not self._health.usable(server.name))

    async def _send(
        self, server: _Server, body: dict[str, Any], started: float, patience_s: float, first: bool
    ) -> list[Outgoing]:
        try:
            waited = time.monotonic() - started
            await asyncio.wait_for(
                server.slots.acquire(first), patience_s - self._timeout / 2 - waited
            )
        except asyncio.TimeoutError as exc:
            raise RasaUnavailable("busy") from exc
        try:
            left = aiohttp.ClientTimeout(total=patience_s - (time.monotonic() - started))
            async with self._http.post(server.url, json=body, timeout=left) as response:
                response.raise_for_status()
                answer = await response.json(content_type=None)
            return [_parse(item) for item in answer]
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
            raise _Refused(server.name) from exc
        except (
            aiohttp.ClientError,
            asyncio.TimeoutError,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
        ) as exc:
            raise RasaUnavailable(type(exc).__name__) from exc
        finally:
            server.slots.release()


def home(sender: str, servers: int) -> int:
    """The index of the sender's own Rasa server: the same in every gateway replica and restart
    (Python's hash() is not)."""
    return zlib.crc32(sender.encode()) % servers


def _parse(item: dict[str, Any]) -> Outgoing:
    buttons = tuple(
        Button(title=str(b["title"]), payload=str(b["payload"])) for b in item.get("buttons") or ()
    )
    return Outgoing(text=item.get("text") or "", buttons=buttons, custom=item.get("custom"))
