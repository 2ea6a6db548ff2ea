"""`make bench`, the load: what children write, conversations at a person's pace, and phases."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bot.rasa_client import home
from scripts.bench.metering import Meter
from scripts.bench.settings import Config
from scripts.bench.stock import mood_turns
from scripts.bench.turns import LineReplies, Tally, direct_turn, line_turn, webchat_turn

# What children (and a caregiver and a friend) write, in Thai and English, several turns each; a
# turn starting with "/" is a button press. None of them asks for a person or says that they are in
# danger now: that opens a handoff, after which the bot rightly stays silent.
SCRIPTS: tuple[tuple[str, ...], ...] = (
    (
        "สวัสดีค่ะ",
        "มีคนขู่ว่าจะปล่อยคลิปหนูถ้าไม่ส่งรูปให้อีก",
        '/provide_age{"age_band":"13_15"}',
        "แจ้งความได้ที่ไหนบ้างคะ",
        "ขอบคุณค่ะ",
    ),
    (
        "hi",
        "a guy from instagram has my pics and says he will send them to my friends unless i pay",
        "im 14",
        "where can i report this",
        "thanks",
    ),
    (
        "หวัดดีครับ",
        "มีผู้ชายในเกมขอให้ผมถ่ายรูปไม่ใส่เสื้อส่งไป",
        "ม.2 ครับ",
        "จะบล็อกเขายังไงดี",
        "ขอบคุณครับ",
    ),
    (
        "hello",
        "my ex posted my private photos in a group chat",
        '/report_help{"question":"evidence"}',
        "how do i get them removed",
        "ok thank you",
    ),
    (
        "สวัสดีค่ะ",
        "ลูกสาวโดนคนในเฟซบุ๊กขู่จะแฉคลิป ต้องทำยังไงคะ",
        "โทร 1300 แล้วจะเกิดอะไรขึ้นคะ",
        "ขอบคุณมากค่ะ",
    ),
    (
        "hey",
        "my friend's pictures got leaked and everyone at school has seen them",
        "what can i do to help her",
        '/report_help{"question":"what_happens"}',
        "thanks a lot",
    ),
    (
        "สวัสดี",
        "can we talk in english",
        "someone online offered me robux if i do a video call with him",
        "i'm 12",
        "thank you",
    ),
    (
        "ดีค่ะ",
        "เพื่อนในแชทชวนไปเจอแล้วบอกว่าห้ามบอกพ่อแม่",
        "อายุ 13 ค่ะ",
        "ตั้งค่าความเป็นส่วนตัวยังไงดี",
        "ขอบคุณนะคะ",
    ),
)
TURNS_PER_CONVERSATION = sum(map(len, SCRIPTS)) / len(SCRIPTS)

Turn = Callable[[str, str], Awaitable[None]]


async def converse(
    turn: Turn,
    name: str,
    deadline: float,
    think: tuple[float, float],
    rng: random.Random,
    spread: float,
) -> None:
    """One child after another on one seat: whole conversations with a pause before each turn,
    until the deadline (a turn under way is finished). The first turn comes within `spread`
    seconds of the start (a child's pause: seats start spread out; a second: a burst)."""

    async def pause(seconds: float) -> None:  # cut short by the deadline
        await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic())))

    await pause(rng.uniform(0, spread))
    number = 0
    while time.monotonic() < deadline:
        user = f"{name}-{number}-{uuid.uuid4().hex[:8]}"
        number += 1
        for text in rng.choice(SCRIPTS):
            if time.monotonic() >= deadline:
                return
            await turn(user, text)
            await pause(rng.uniform(*think))


@dataclass
class Phase:
    seconds: float
    cpu_s: dict[str, float]
    peak_rss: dict[str, float]


async def phase(
    meter: Meter,
    seats: dict[str, tuple[int, Turn]],
    cfg: Config,
    seed: int,
    seconds: float | None = None,
    spread: float | None = None,
) -> Phase:
    """Runs every path's seats side by side for `seconds` (cfg.phase_s), the first turns spread
    over `spread` seconds (a child's longest pause)."""
    meter.reset_peak()
    cpu_before = meter.cpu()
    started = time.monotonic()
    deadline = started + (cfg.phase_s if seconds is None else seconds)
    spread = cfg.think_s[1] if spread is None else spread
    rng = random.Random(seed)
    jobs = []
    for path, (count, turn) in seats.items():
        for seat in range(count):
            seat_rng = random.Random(rng.random())
            jobs.append(
                converse(
                    turn, f"bench-{seed}-{path}-{seat}", deadline, cfg.think_s, seat_rng, spread
                )
            )
    await asyncio.gather(*jobs)
    seconds = time.monotonic() - started
    cpu_after = meter.cpu()
    return Phase(
        seconds=seconds,
        cpu_s={n: cpu_after[n] - cpu_before[n] for n in cpu_before},
        peak_rss=meter.reset_peak(),
    )


def own_rasa(servers: Sequence[httpx.AsyncClient], user: str) -> httpx.AsyncClient:
    """The Rasa server a conversation sent straight to Rasa goes to: chosen per sender as the
    gateway chooses (bot/rasa_client.py `home`), so each server has its own conversations."""
    return servers[home(user, len(servers))]


async def overhead_phase(
    web: httpx.AsyncClient,
    rasa: Sequence[httpx.AsyncClient],
    conversations: int,
    stock: httpx.AsyncClient,
) -> tuple[Tally, Tally, Tally]:
    """One conversation at a time, no pause; each turn goes through the gateway and, right after,
    the same text goes straight to Rasa for a twin conversation, and the next turn of Rasa's demo
    bot's own conversations goes to `stock` (scripts/bench/stock.py), so all meet the same noise."""
    gateway, direct, stock_tally = Tally(), Tally(), Tally()
    mood = mood_turns()
    for number in range(conversations):
        script = SCRIPTS[number % len(SCRIPTS)]
        user = f"bench-overhead-{number}-{uuid.uuid4().hex[:8]}"
        for text in script:
            await webchat_turn(web, user, text, gateway)
            await direct_turn(own_rasa(rasa, user + "-direct"), user + "-direct", text, direct)
            await direct_turn(stock, *next(mood), stock_tally)
    return gateway, direct, stock_tally


def gateway_seats(concurrency: int, web: Turn, line: Turn) -> dict[str, tuple[int, Turn]]:
    """Conversations through the gateway: a fifth of them on LINE (with user ids starting with
    "U", as LINE's do), the rest in the web chat."""
    return {
        "web": (concurrency - concurrency // 5, web),
        "line": (concurrency // 5, lambda user, text: line("U" + user, text)),
    }


async def run_level(
    concurrency: int,
    seed: int,
    web: httpx.AsyncClient,
    rasa: Sequence[httpx.AsyncClient],
    replies: LineReplies,
    meter: Meter,
    cfg: Config,
) -> dict[str, Any]:
    """`concurrency` conversations through the gateway, a fifth of them on LINE and the rest in
    the web chat; then as many straight to Rasa."""
    line_seats = concurrency // 5
    print(
        f"{concurrency} conversations ({line_seats} on LINE): {cfg.phase_s:.0f} s through the "
        f"gateway, then {cfg.phase_s:.0f} s straight to Rasa...",
        flush=True,
    )
    gateway, line, direct = Tally(), Tally(), Tally()
    settle = 2 if cfg.quick else 5
    through_gateway = await phase(
        meter,
        gateway_seats(
            concurrency,
            lambda u, t: webchat_turn(web, u, t, gateway),
            lambda u, t: line_turn(web, replies, u, t, line),
        ),
        cfg,
        seed,
    )
    await asyncio.sleep(settle)
    to_rasa = await phase(
        meter,
        {"direct": (concurrency, lambda u, t: direct_turn(own_rasa(rasa, u), u, t, direct))},
        cfg,
        seed + 1000,
    )
    await asyncio.sleep(settle)
    return {
        "gateway": gateway,
        "line": line,
        "direct": direct,
        "through_gateway": through_gateway,
        "to_rasa": to_rasa,
        "line_seats": line_seats,
    }
