"""bot/holding.py on its own: the holding line goes out once, only when the answer is late, while
the same work goes on; the supervisors' rate forgets what is older than its window."""

from __future__ import annotations

import asyncio

import pytest

from bot.holding import WINDOW_MINUTES, Abandoned, HoldingRate, answered_or_held


def test_a_late_answer_gets_the_holding_line_once_and_the_same_work_goes_on() -> None:
    started: list[str] = []
    held: list[float] = []

    async def work(seconds: float) -> str:
        started.append("work")
        await asyncio.sleep(seconds)
        return "answer"

    async def scenario() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        begun = loop.time()

        async def hold() -> None:
            held.append(loop.time() - begun)

        late = await answered_or_held(work(0.5), 0.2, hold, never)
        on_time = await answered_or_held(work(0.05), 0.2, hold, never)
        return late, on_time

    assert asyncio.run(scenario()) == ("answer", "answer")
    assert started == ["work", "work"]  # never started again
    assert len(held) == 1 and 0.2 <= held[0] < 0.4


async def never() -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize("down_after_s, holds", [(0.1, 0), (0.3, 1)])
def test_a_turn_waiting_when_rasa_is_known_down_is_given_up(down_after_s, holds) -> None:
    """Before the holding line: no promise is made (the fail-safe answers); after it: the holding
    line was the last word. Either way the work is stopped."""
    held: list[bool] = []
    stopped: list[bool] = []

    async def work() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            stopped.append(True)
            raise
        return "answer"

    async def hold() -> None:
        held.append(True)

    async def down() -> None:
        await asyncio.sleep(down_after_s)

    async def scenario() -> None:
        with pytest.raises(Abandoned):
            await answered_or_held(work(), 0.2, hold, down)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert len(held) == holds and stopped == [True]


def test_the_rate_counts_the_last_minutes_only() -> None:
    now = [0.0]
    rate = HoldingRate(clock=lambda: now[0])
    for _ in range(4):
        rate.turn()
    rate.held()
    rate.held()
    rate.answered_later()
    assert rate.report() == {"minutes": WINDOW_MINUTES, "turns": 4, "held": 2, "answered": 1}
    now[0] = 60.0 * (WINDOW_MINUTES - 1)
    rate.turn()
    assert rate.report()["turns"] == 5
    now[0] = 60.0 * WINDOW_MINUTES
    assert rate.report() == {"minutes": WINDOW_MINUTES, "turns": 1, "held": 0, "answered": 0}
