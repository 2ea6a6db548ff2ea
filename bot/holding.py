"""Past capacity, a burst delays help instead of replacing it.

When Rasa has not answered a turn within RASA_TIMEOUT_S (the turn waits for one of the
RASA_MAX_IN_FLIGHT slots, or Rasa is slow), the child gets a short holding line at once
(`utter_holding`: the answer is coming; 1387, 1300 and 191 for now; a person), and the same
request goes on waiting, keeping its place in the queue, for up to HOLD_MAX_S. The message is never
sent to Rasa again (it would be in the child's tracker twice). The real answer then reaches the
child the channel's way (LINE and Telegram: the push outbox; the web chat: its later messages); if
none came within HOLD_MAX_S, the holding line was the last word.

A child in a handoff or once marked urgent is never held: their turns go ahead of all others
(bot/slots.py), with RASA_TIMEOUT_S as before. While Rasa is known to be down (the breaker,
bot/health.py) nothing is promised: the fail-safe answers at once, as before, and a turn waiting
when the breaker opens, or when the Rasa server it went to is found down, is given up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.message import Outgoing

T = TypeVar("T")
# Delivers the holding line now, the channel's way (its reply, or the web chat request's answer).
Hold = Callable[[list[Outgoing]], Awaitable[None]]
HOLD_MAX_S = 60.0
MINUTE_S = 60
WINDOW_MINUTES = 5  # the supervisors' "last minutes"


class Abandoned(Exception):
    """Rasa (the turn's server, or all of them) became known to be down while a turn waited: no
    answer will come."""


async def answered_or_held(
    work: Awaitable[T],
    after_s: float,
    hold: Callable[[], Awaitable[None]],
    down: Callable[[], Awaitable[None]],
) -> T:
    """`work`'s result; when it is not ready after `after_s`, `hold` runs first while the same
    work goes on. Once `down` returns (the breaker opened, or the turn's Rasa server is known
    down) the work is given up (Abandoned):
    before the holding line, so that the fail-safe answers instead of a promise that cannot be
    kept; after it, the holding line was the last word, and the child's next message is not kept
    waiting behind a turn at a dead Rasa."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(down())
    try:
        await asyncio.wait({task, watch}, timeout=after_s, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and not watch.done():
            await hold()
            await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            raise Abandoned
        return task.result()
    finally:
        task.cancel()  # a no-op once done; stops the work abandoned, or if `hold` failed
        watch.cancel()


class HoldingRate:
    """Turns sent to Rasa, those that got the holding line, and those of them the real answer
    followed, over the last WINDOW_MINUTES, per gateway process (like the fail-safe count of
    bot/health.py): the supervisors' overload banner."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._minutes: dict[int, list[int]] = {}  # minute -> [turns, held, answered later]

    def turn(self) -> None:
        self._count(0)

    def held(self) -> None:
        self._count(1)

    def answered_later(self) -> None:
        self._count(2)

    def report(self) -> dict[str, Any]:
        now = self._minute()
        recent = [c for m, c in self._minutes.items() if m > now - WINDOW_MINUTES]
        turns, held, answered = (sum(c[i] for c in recent) for i in range(3))
        return {"minutes": WINDOW_MINUTES, "turns": turns, "held": held, "answered": answered}

    def _count(self, index: int) -> None:
        now = self._minute()
        for old in [m for m in self._minutes if m <= now - WINDOW_MINUTES]:
            del self._minutes[old]
        self._minutes.setdefault(now, [0, 0, 0])[index] += 1

    def _minute(self) -> int:
        return int(self._clock() // MINUTE_S)
