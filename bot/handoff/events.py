"""Live updates for open consoles: every case change is announced to every subscriber.

Without REDIS_URL, one gateway process serves the consoles and events stay in that process. With
it, several gateway replicas share the consoles: every event is delivered to this process's own
subscribers at once and also published on a Redis channel; each replica listens on that channel
(`running()`, entered by the app's lifespan) and hands what the others published to its own
subscribers. A console connected to gateway B therefore sees a case claimed on gateway A.

Subscribers that fall behind lose old events rather than slowing the gateway; the console reloads
on any event, so only the latest matters. For the same reason Redis being away loses nothing but
other replicas' live updates: local delivery never waits for it, and after a reconnection every
console is told to reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

BACKLOG = 32
OUTBOX = 1000  # events waiting to be published while Redis is slow or away
RETRY_MAX_S = 10.0


def channel_for(redis_url: str) -> str:
    """The Redis channel for one deployment. Pub/sub ignores Redis database numbers, so the number
    in REDIS_URL is put into the channel's name: deployments sharing a Redis server with different
    numbers do not see each other's consoles."""
    path = urlsplit(redis_url).path.strip("/")
    return f"console-events:{path or '0'}"


class Events:
    def __init__(self, redis_url: str = "", channel: str | None = None) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._redis_url = redis_url
        self.channel = channel or (channel_for(redis_url) if redis_url else "")
        self._origin = uuid.uuid4().hex  # our own messages come back from Redis: skip them
        self._outbox: asyncio.Queue[str] | None = None

    def publish(self, event: dict[str, Any]) -> None:
        self._deliver(event)
        if self._outbox is None:
            return
        if self._outbox.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._outbox.get_nowait()
        self._outbox.put_nowait(json.dumps({"origin": self._origin, "event": event}))

    def changed(self, case_id: int | None = None) -> None:
        self.publish({"type": "changed", "case": case_id})

    def urgent(self, case_id: int) -> None:
        """A new urgent case: consoles reload as for any change, and also sound and notify."""
        self.publish({"type": "urgent", "case": case_id})

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(BACKLOG)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def _deliver(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    # -- fan-out across gateway replicas (REDIS_URL) ------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self, subscribe_timeout_s: float = 5.0) -> AsyncIterator[None]:
        """Connects to Redis while the app lives (a no-op without REDIS_URL). Waits for the
        subscription, so an event published elsewhere after start-up is not missed; if Redis
        cannot be reached, the gateway starts anyway and keeps trying."""
        if not self._redis_url:
            yield
            return
        import redis.asyncio as redis

        client = redis.from_url(self._redis_url, health_check_interval=30)
        subscribed = asyncio.Event()
        self._outbox = asyncio.Queue(OUTBOX)
        tasks = [
            asyncio.create_task(self._listen(client, subscribed)),
            asyncio.create_task(self._send(client, self._outbox)),
        ]
        try:
            try:
                await asyncio.wait_for(subscribed.wait(), subscribe_timeout_s)
            except asyncio.TimeoutError:
                log.error("console events: Redis not reachable yet; other replicas' updates wait")
            yield
        finally:
            outbox, self._outbox = self._outbox, None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(outbox.join(), 2)  # what was published before shutdown
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await client.aclose()

    async def _send(self, client: Any, outbox: asyncio.Queue[str]) -> None:
        while True:
            message = await outbox.get()
            try:
                await client.publish(self.channel, message)
            except Exception as exc:  # Redis away: this replica's consoles already have it
                log.warning("console events: publish to Redis failed (%s)", type(exc).__name__)
            finally:
                outbox.task_done()

    async def _listen(self, client: Any, subscribed: asyncio.Event) -> None:
        delay = 0.5
        while True:
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    if subscribed.is_set():  # a reconnection: what was missed is unknown
                        self._deliver({"type": "changed", "case": None})
                        log.info("console events: Redis subscription restored")
                    subscribed.set()
                    delay = 0.5
                    async for message in pubsub.listen():
                        self._received(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "console events: Redis subscription lost (%s); retrying in %.1fs",
                    type(exc).__name__,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _received(self, data: Any) -> None:
        try:
            message = json.loads(data)
            origin, event = message["origin"], message["event"]
        except (TypeError, ValueError, KeyError):
            log.warning("console events: unreadable message on %s ignored", self.channel)
            return
        if origin != self._origin and isinstance(event, dict):
            self._deliver(event)
