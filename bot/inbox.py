"""Processes platform events after the webhook has answered, in order per user.

A webhook must be acknowledged at once (LINE and Telegram redeliver slow ones), but a user's
messages must reach Rasa in the order they were sent. Each user gets a queue and one worker; the
worker ends when its queue is empty, so idle users cost nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class Inbox:
    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[Job]] = {}
        self._workers: set[asyncio.Task[None]] = set()

    def submit(self, user_key: str, job: Job) -> None:
        queue = self._queues.get(user_key)
        if queue is None:
            queue = self._queues[user_key] = asyncio.Queue()
            task = asyncio.get_running_loop().create_task(self._work(user_key, queue))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        queue.put_nowait(job)

    async def _work(self, user_key: str, queue: asyncio.Queue[Job]) -> None:
        while True:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                del self._queues[user_key]
                return
            try:
                await job()
            except Exception:  # one bad event must not stop this user's later messages
                log.exception("processing an event failed")

    async def drain(self) -> None:
        """Wait until every submitted job has run (shutdown and tests)."""
        while self._workers:
            await asyncio.gather(*list(self._workers), return_exceptions=True)
