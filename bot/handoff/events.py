"""Live updates for open consoles: every case change is announced to every subscriber.

In-process: one gateway process serves the console. Subscribers that fall behind lose old events
rather than slowing the gateway; the console reloads on any event, so only the latest matters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

BACKLOG = 32


class Events:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    def changed(self, case_id: int | None = None) -> None:
        self.publish({"type": "changed", "case": case_id})

    @contextlib.contextmanager
    def subscription(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(BACKLOG)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
