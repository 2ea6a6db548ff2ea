"""`make bench`, the burst: many children sending their first message in the same second.

Past capacity a child must still hear back within RASA_TIMEOUT_S: a short holding line (1387,
1300, 191), then the real answer when it is ready (web chat: the later-messages the page polls;
LINE: a push), so a burst delays help instead of replacing it (issue 16). Each conversation sends
its first turn within the same second, then goes on at a person's pace for a short while. Counted
per turn: holding lines, those followed by the real answer within a minute, those that stayed the
last word, fail-safe answers, and the time from the message to the real answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from scripts.bench.load import Phase, gateway_seats, phase
from scripts.bench.metering import Meter
from scripts.bench.reporting import summary
from scripts.bench.settings import CLIENT_TIMEOUT_S, Config
from scripts.bench.turns import LineReplies, Tally, line_send, webchat_kind, webchat_send

FOLLOW_S = 60  # the issue: only when no answer can come within a minute is the holding line last
POLL_S = 1.5  # as the web chat page polls its later messages (bot/static/webchat.js POLL_MS)


@dataclass
class BurstTally:
    """What one path saw in the burst, per turn."""

    turns: int = 0
    holding: int = 0  # first answered with the holding line
    followed_by_answer: int = 0  # ... and then the real answer came within FOLLOW_S
    only_holding: int = 0  # ... and nothing else came
    fallbacks: int = 0  # the fail-safe answer, at once or after a holding line
    errors: int = 0  # nothing at all
    answer_ms: list[float] = field(default_factory=list)  # message -> real answer

    def note(self, held: bool, last: str | None, started: float) -> None:
        """One turn: whether it got the holding line first, and what came last ("answer",
        "fallback", or None for nothing more)."""
        self.turns += 1
        self.holding += held
        if last == "answer":
            self.followed_by_answer += held
            self.answer_ms.append((time.perf_counter() - started) * 1000)
        elif last == "fallback":
            self.fallbacks += 1
        elif held:
            self.only_holding += 1
        else:
            self.errors += 1

    def counts(self) -> dict[str, int]:
        return {key: value for key, value in asdict(self).items() if key != "answer_ms"}


async def webchat_turn(client: httpx.AsyncClient, user: str, text: str, tally: BurstTally) -> None:
    """A web chat turn; after a holding line, polls later messages as the page does."""
    started = time.perf_counter()
    sent = await webchat_send(client, user, text)
    if sent is None:
        tally.note(False, None, started)
        return
    messages = sent[1]["messages"]
    kind = webchat_kind(messages)
    if kind != "holding":
        tally.note(False, kind, started)
        return
    cursor = max(int(m.get("cursor") or 0) for m in messages)
    while time.perf_counter() - started < FOLLOW_S:
        await asyncio.sleep(POLL_S)
        try:
            response = await client.get("/webchat/messages", params={"user": user, "after": cursor})
            later = response.json().get("messages") or [] if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError):
            continue  # as the page: the next poll catches up from the same cursor
        cursor = max([cursor, *(int(m.get("cursor") or 0) for m in later)])
        senders = {m.get("sender") for m in later}
        if "bot" in senders or "fallback" in senders:
            tally.note(True, "answer" if "bot" in senders else "fallback", started)
            return
    tally.note(True, None, started)


async def line_turn(
    client: httpx.AsyncClient, replies: LineReplies, user: str, text: str, tally: BurstTally
) -> None:
    """A LINE turn; after a holding line (the reply), waits for the real answer's push."""
    started = time.perf_counter()
    sent = await line_send(client, replies, user, text, Tally())
    if sent is None:
        tally.note(False, None, started)
        return
    _, token, arrivals = sent
    held = False
    try:
        _, kind = await asyncio.wait_for(arrivals.get(), CLIENT_TIMEOUT_S)
        if kind == "holding":
            held = True
            left = FOLLOW_S - (time.perf_counter() - started)
            _, kind = await asyncio.wait_for(arrivals.get(), max(left, 0.1))
    except asyncio.TimeoutError:
        replies.forget(token, user)
        kind = None
    tally.note(held, kind, started)


async def run(
    web: httpx.AsyncClient, replies: LineReplies, meter: Meter, cfg: Config
) -> dict[str, Any]:
    """cfg.burst_conversations first turns within one second, then a person's pace until
    cfg.burst_s (a turn under way, with its wait for the real answer, is finished)."""
    count = cfg.burst_conversations
    print(
        f"burst: {count} conversations ({count // 5} on LINE) send their first message within "
        f"the same second, then go on at a person's pace for {cfg.burst_s:.0f} s...",
        flush=True,
    )
    on_web, on_line = BurstTally(), BurstTally()
    seats = gateway_seats(
        count,
        lambda u, t: webchat_turn(web, u, t, on_web),
        lambda u, t: line_turn(web, replies, u, t, on_line),
    )
    ran = await phase(meter, seats, cfg, seed=2000, seconds=cfg.burst_s, spread=1.0)
    return report(on_web, on_line, count, ran)


def report(web: BurstTally, line: BurstTally, conversations: int, ran: Phase) -> dict[str, Any]:
    """report.json's `burst`: both paths summed, each path's counts beside."""
    counts = {key: web.counts()[key] + line.counts()[key] for key in web.counts()}
    answer_ms = web.answer_ms + line.answer_ms
    return {
        "conversations": conversations,
        "line_conversations": conversations // 5,
        "seconds": ran.seconds,
        **counts,
        "answer_ms": summary(answer_ms),
        "rss_mb_total_peak": ran.peak_rss.get("total"),
        "by_path": {"webchat": web.counts(), "line": line.counts()},
    }
