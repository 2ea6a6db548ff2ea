"""The turns at Rasa at once (RASA_MAX_IN_FLIGHT): a semaphore whose waiters are served first come
first served, except the children who must never wait behind a burst (bot/holding.py: in a
handoff, or once marked urgent), who go ahead of everyone else."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Slots:
    def __init__(self, size: int) -> None:
        self._free = max(1, size)
        self._first: deque[asyncio.Future[None]] = deque()
        self._others: deque[asyncio.Future[None]] = deque()

    def full(self) -> bool:
        """A turn sent now would have to wait for a slot."""
        return self._free <= 0

    async def acquire(self, first: bool = False) -> None:
        """Takes a slot, waiting while none is free; cancelled (a timeout), it takes none."""
        if self._free > 0 and not self._first and not self._others:
            self._free -= 1
            return
        line = self._first if first else self._others
        turn = asyncio.get_running_loop().create_future()
        line.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed a slot just as the wait was given up: pass it on
            else:
                with contextlib.suppress(ValueError):
                    line.remove(turn)
            raise

    def release(self) -> None:
        """Hands the slot to the next waiter (those marked first before the others), else frees
        it."""
        for line in (self._first, self._others):
            while line:
                turn = line.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._free += 1
