"""What the gateway knows of each part of the stack, and since when: for `/healthz`, for the
circuit breaker in front of Rasa (bot/rasa_client.py) and for the console's banner.

Every part is probed every `every_s` seconds (a cheap GET, `SELECT 1` or PING), never per
request, so `/healthz` costs nothing and a hung part is noticed even while no child writes. A part
is down at once when nothing listens (connection refused: killed, restarting, still loading). One
that answers wrongly or too slowly is down only when it has failed `FAILURES_TO_DOWN` probes in a
row over at least `hung_after_s` (RASA_TIMEOUT_S by default: what a turn would wait anyway), and
Rasa not while it still answers turns: a Rasa busy under load, or compiling its first inference,
is slow, not hung. A failed turn at Rasa wakes the prober at once.

With several Rasa servers (RASA_URL lists them) each is a part of its own ("rasa", "rasa2", ...):
the breaker opens only when every one is down, since the others take a dead one's children.

Without Rasa, the action server, the database or Redis (Rasa's lock store, where set) the bot
cannot give real answers: the stack is degraded, `/healthz` says 503, the console shows a banner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.background import background
from bot.config import Settings, rasa_parts
from bot.store.models import as_utc, utcnow

log = logging.getLogger(__name__)

UP, DOWN, UNKNOWN = "up", "down", "unknown"
FAILURES_TO_DOWN = 2
BEHIND_RASA = ("rasa", "actions")  # a turn sent while one of these is down cannot be answered


def _is_rasa(name: str) -> bool:
    return name == "rasa" or (name.startswith("rasa") and name[4:].isdigit())


class Refused(Exception):
    """Nothing listens: the part is down, no need to ask twice."""


Probe = Callable[[], Awaitable[None]]  # returns when the part is up; raises otherwise


@dataclass
class Part:
    state: str = UNKNOWN
    since: datetime = field(default_factory=utcnow)
    failures: int = 0  # failed probes in a row
    failing_since: float | None = None  # time.monotonic() of the first of them
    problem: str | None = None

    def view(self) -> dict[str, Any]:
        since = as_utc(self.since).isoformat()
        return {"state": self.state, "since": since, "problem": self.problem}


class Health:
    def __init__(
        self,
        probes: dict[str, Probe],
        every_s: float = 2.0,
        timeout_s: float = 3.0,
        hung_after_s: float = 0.0,
    ) -> None:
        self._probes = probes
        self._every_s = every_s
        self._timeout_s = timeout_s
        self._hung_after_s = hung_after_s
        self._wake = asyncio.Event()
        self.parts = {"gateway": Part(UP), **{name: Part() for name in probes}}
        self._probed = asyncio.Event()  # set, and replaced, after every probe
        # Turns Rasa did not answer (the fail-safe, or its "talk to a person") since the bot was
        # last ready or last became degraded.
        self.failsafe_answers = 0
        self._was_ready = False  # as last told: probes run together, a change is told once

    # -- what is known -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The bot can give real answers: every part is up."""
        return all(part.state == UP for part in self.parts.values())

    def degraded_since(self) -> datetime | None:
        down = [p.since for p in self.parts.values() if p.state != UP]
        return min(down) if down else None

    def down(self, names: tuple[str, ...] = BEHIND_RASA) -> str | None:
        """The first of `names` known to be down, "rasa" standing for all Rasa servers together:
        the breaker is open."""
        return next((n for n in names if self._down(n)), None)

    def usable(self, name: str) -> bool:
        """`name` may be sent a turn: not known to be down."""
        return name not in self.parts or self.parts[name].state != DOWN

    def _down(self, name: str) -> bool:
        group = [n for n in self.parts if n == name or (name == "rasa" and _is_rasa(n))]
        return bool(group) and all(self.parts[n].state == DOWN for n in group)

    async def probed(self) -> None:
        """Returns after the next probe: what is known may have changed."""
        await self._probed.wait()

    def report(self) -> dict[str, Any]:
        since = self.degraded_since()
        return {
            "ready": self.ready,
            "degraded_since": as_utc(since).isoformat() if since else None,
            "failsafe_answers": self.failsafe_answers,
            "parts": {name: part.view() for name, part in self.parts.items()},
        }

    # -- what happens ------------------------------------------------------------------------------

    def turn_failed(self) -> None:
        """A turn at Rasa failed: look again now rather than at the next round."""
        self.failsafe_answers += 1
        self._wake.set()

    def turn_answered(self, server: str = "rasa") -> None:
        """A Rasa server answered a turn: whatever its probes say, it is not hung."""
        rasa = self.parts.get(server)
        if rasa is not None and rasa.state == UP:
            rasa.failures, rasa.failing_since = 0, None

    def turn_refused(self) -> None:
        """A turn got the fail-safe without asking Rasa (the breaker is open)."""
        self.failsafe_answers += 1

    async def probe(self, name: str) -> None:
        part = self.parts[name]
        try:
            await asyncio.wait_for(self._probes[name](), self._timeout_s)
        except Refused as refused:
            self._set(name, part, DOWN, str(refused) or "refused")
        except Exception as error:  # any failure of any probe is this part's problem, not ours
            now = time.monotonic()
            part.failures += 1
            part.failing_since = part.failing_since or now
            hung = (
                part.failures >= FAILURES_TO_DOWN and now - part.failing_since >= self._hung_after_s
            )
            if part.state != DOWN and hung:
                self._set(name, part, DOWN, type(error).__name__)
            else:
                part.problem = type(error).__name__
        else:
            part.failures, part.failing_since = 0, None
            self._set(name, part, UP, None)
        self._probed.set()
        self._probed = asyncio.Event()
        if self._was_ready != self.ready:
            self._was_ready = self.ready
            self.failsafe_answers = 0
            log.warning("the bot %s", "gives real answers again" if self.ready else "is degraded")

    def _set(self, name: str, part: Part, state: str, problem: str | None) -> None:
        part.problem = problem
        if part.state != state:
            if state == DOWN or part.state == DOWN:
                log.warning("%s is %s (%s)", name, state, problem or "ok")
            part.state, part.since = state, utcnow()

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(name) for name in self._probes))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Probes while the app lives; the first round is done before the app serves."""

        async def loop() -> None:
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._every_s)
                self._wake.clear()
                await self.probe_all()

        await self.probe_all()
        async with background(loop()):
            yield


# -- the probes ------------------------------------------------------------------------------------


def http_probe(client: httpx.AsyncClient, url: str) -> Probe:
    async def probe() -> None:
        try:
            response = await client.get(url)
        except httpx.ConnectError as error:
            raise Refused(type(error).__name__) from error
        response.raise_for_status()

    return probe


def database_probe(sessions: async_sessionmaker) -> Probe:
    async def probe() -> None:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))

    return probe


def redis_probe(client: Any) -> Probe:
    async def probe() -> None:
        await client.ping()

    return probe


@contextlib.asynccontextmanager
async def monitoring(settings: Settings, sessions: async_sessionmaker) -> AsyncIterator[Health]:
    """The gateway's Health, probing the stack of `settings` while the app lives."""
    # A new connection per probe: a kept-alive one to a Rasa since restarted proves nothing.
    async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)) as client:
        probes = {
            **{
                name: http_probe(client, url + "/")
                for name, url in zip(
                    rasa_parts(len(settings.rasa_urls)), settings.rasa_urls, strict=True
                )
            },
            "actions": http_probe(client, settings.action_url.rstrip("/") + "/health"),
            "database": database_probe(sessions),
        }
        redis_client = None
        if settings.redis_url:
            import redis.asyncio as redis

            redis_client = redis.from_url(settings.redis_url)
            probes["redis"] = redis_probe(redis_client)
        health = Health(
            probes,
            settings.health_probe_every_s,
            settings.health_probe_timeout_s,
            settings.health_hung_after_s,
        )
        try:
            async with health.running():
                yield health
        finally:
            if redis_client is not None:
                await redis_client.aclose()
