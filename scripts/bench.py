"""`make bench`: how long a child waits for an answer, what the stack costs, the gateway's share.

Starts the real stack (trained model; SQLite, or PostgreSQL when DATABASE_URL is set) on its own
ports with a fresh var dir under var/bench/ and the LINE stand-in of the tests, then measures in
one run (README "Benchmarks" explains how to read the result):

1. one conversation at a time, each turn sent through the gateway's web chat and, interleaved, the
   same turn straight to Rasa's REST channel: the p50 ratio is the gateway's overhead;
2. 1, 10, 50 and 200 concurrent conversations (Thai and English, several turns each, a child's
   pause between turns), through the gateway (a fifth of them on LINE, whose webhook
   acknowledgements are timed) and then straight to Rasa: latency, turns/s, errors, fallbacks;
3. resident memory and CPU of each process at rest and under load, start-up time of each process,
   the model's training time, and `make eval`'s parse time per message (scripts/bench_parse.py).

Writes var/bench/report.json, var/bench/samples.json (every latency) and var/bench/report.png,
and prints a summary. Runs with the gateway's Python.

Environment: BENCH_QUICK=1 (short phases, for development), BENCH_LEVELS ("1,10,50,200"),
BENCH_PHASE_S (seconds per load phase), BENCH_THINK_S ("3,12": a child's pause before each turn,
uniform in this range), BENCH_OVERHEAD_CONVERSATIONS, BENCH_TRAIN (1: time a training even if
one was timed for these inputs; 0: never), BENCH_PARSE (0/1), BENCH_KEEP=1 (keep the var dir).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import hashlib
import hmac
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from scripts.stack import ENGINE_BIN, GATEWAY_PYTHON, Stack  # noqa: E402
from tests.gateway.standin import Call, StandIn  # noqa: E402

OUT = ROOT / "var" / "bench"
PROCESSES = ("actions", "gateway", "rasa")  # also the start order: each is timed alone
LINE_SECRET = "bench-line-channel-secret"
LINE_TOKEN = "bench-line-access-token"
LINE_REPLY = "/v2/bot/message/reply"
LINE_PUSH = "/v2/bot/message/push"
CLIENT_TIMEOUT_S = 30
TRAINING_INPUTS = (
    "config.yml",
    "domain.yml",
    "data/*.yml",
    "data/nlu/*.yml",
    "components/*.py",
    "components/lexicon/*.yml",
)

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


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    quick: bool
    levels: tuple[int, ...]
    phase_s: float
    think_s: tuple[float, float]
    overhead_conversations: int
    train: str  # "auto", "1" (always time a training) or "0" (never)
    parse: bool
    keep: bool
    eval_path: Path
    out: Path

    @classmethod
    def from_env(cls, eval_path: Path, out: Path) -> Config:
        env = os.environ
        quick = env.get("BENCH_QUICK", "0") == "1"
        think = [float(v) for v in env.get("BENCH_THINK_S", "3,12").split(",")]
        return cls(
            quick=quick,
            levels=tuple(int(v) for v in env.get("BENCH_LEVELS", "1,10,50,200").split(",")),
            phase_s=float(env.get("BENCH_PHASE_S", "20" if quick else "90")),
            think_s=(think[0], think[-1]),
            overhead_conversations=int(
                env.get("BENCH_OVERHEAD_CONVERSATIONS", "6" if quick else "40")
            ),
            train=env.get("BENCH_TRAIN", "auto"),
            parse=env.get("BENCH_PARSE", "0" if quick else "1") == "1",
            keep=env.get("BENCH_KEEP", "0") == "1",
            eval_path=eval_path,
            out=out,
        )


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": sum(values) / len(values) if values else None,
        "n": len(values),
    }


# -- processes: memory and CPU from /proc --------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()  # fields from the 3rd on; the name may hold spaces


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (a server may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def rss_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        if fields := _stat(pid):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


class Meter:
    """Samples the stack's resident memory every half second; keeps each process's peak."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.trees = {name: process_tree(pid) for name, pid in pids.items()}
        self.peak: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    def rss(self) -> dict[str, float]:
        now = {name: rss_mb(tree) for name, tree in self.trees.items()}
        now["total"] = sum(now.values())
        return now

    def cpu(self) -> dict[str, float]:
        return {name: cpu_s(tree) for name, tree in self.trees.items()}

    def reset_peak(self) -> dict[str, float]:
        peak, self.peak = self.peak, {}
        return peak

    async def _sample(self) -> None:
        while True:
            for name, value in self.rss().items():
                self.peak[name] = max(self.peak.get(name, 0.0), value)
            await asyncio.sleep(0.5)

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# -- one turn, per path --------------------------------------------------------------------------


@dataclass
class Tally:
    """What one path saw in one phase."""

    ms: list[float] = field(default_factory=list)
    errors: int = 0
    fallbacks: int = 0
    handoffs: int = 0
    ack_ms: list[float] = field(default_factory=list)  # LINE only

    @property
    def answered(self) -> int:
        return len(self.ms)


async def webchat_turn(client: httpx.AsyncClient, user: str, text: str, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        response = await client.post("/webchat/messages", json={"user": user, "text": text})
        elapsed = (time.perf_counter() - started) * 1000
        body = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        tally.errors += 1
        return
    messages = body.get("messages") or []
    if not messages:  # an error status, or silence: both are what a child must never get
        tally.errors += 1
        return
    tally.ms.append(elapsed)
    tally.fallbacks += any(m.get("sender") == "fallback" for m in messages)
    tally.handoffs += body.get("mode") != "bot"


async def direct_turn(client: httpx.AsyncClient, user: str, text: str, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        response = await client.post(
            "/webhooks/rest/webhook", json={"sender": user, "message": text}
        )
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError):
        tally.errors += 1
        return
    tally.ms.append(elapsed)
    tally.fallbacks += not body  # Rasa said nothing: through the gateway, the fallback answer


class LineReplies:
    """The LINE stand-in's reply and push handlers: note when each event's answer arrives.

    They run in the stand-in's threads; the waiting turn is woken on the bench's event loop."""

    def __init__(self, standin: StandIn, loop: asyncio.AbstractEventLoop) -> None:
        from bot.locales import Locales

        locales = Locales(ROOT / "locales")
        self.fallbacks = {locales.render("utter_fallback", lang, {}).text for lang in ("th", "en")}
        self.loop = loop
        self.pushes = 0
        self._by_token: dict[str, asyncio.Future] = {}
        self._by_user: dict[str, asyncio.Future] = {}
        self._lock = threading.Lock()
        standin.handlers[("POST", LINE_REPLY)] = self._reply
        standin.handlers[("POST", LINE_PUSH)] = self._push

    def expect(self, token: str, user: str) -> asyncio.Future:
        future = self.loop.create_future()
        with self._lock:
            self._by_token[token] = self._by_user[user] = future
        return future

    def forget(self, token: str, user: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)
            self._by_user.pop(user, None)

    def _arrived(self, future: asyncio.Future | None, call: Call) -> None:
        """Wakes the turn with (when, whether the answer was the fallback)."""
        at = time.perf_counter()
        texts = {m.get("text") for m in (call.json or {}).get("messages") or []}
        if future is not None:
            self.loop.call_soon_threadsafe(_resolve, future, (at, bool(texts & self.fallbacks)))

    def _reply(self, call: Call) -> tuple[int, Any]:
        with self._lock:
            future = self._by_token.pop((call.json or {}).get("replyToken"), None)
        self._arrived(future, call)
        return 200, {"sentMessages": [{"id": "1", "quoteToken": "q"}]}

    def _push(self, call: Call) -> tuple[int, Any]:
        with self._lock:
            self.pushes += 1
            future = self._by_user.pop((call.json or {}).get("to"), None)
        self._arrived(future, call)
        return 200, {"sentMessages": [{"id": "2", "quoteToken": "q"}]}


def _resolve(future: asyncio.Future, result: tuple[float, bool]) -> None:
    if not future.done():
        future.set_result(result)


def line_event(user: str, text: str, token: str) -> dict[str, Any]:
    """A LINE text message, or a postback for a button press (a payload starting with "/")."""
    event: dict[str, Any] = {
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": uuid.uuid4().hex.upper(),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": token,
    }
    if text.startswith("/"):
        return {**event, "type": "postback", "postback": {"data": text}}
    message = {"type": "text", "id": uuid.uuid4().hex[:12], "quoteToken": "q", "text": text}
    return {**event, "type": "message", "message": message}


def signed(body: bytes) -> str:
    digest = hmac.new(LINE_SECRET.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


async def line_turn(
    client: httpx.AsyncClient, replies: LineReplies, user: str, text: str, tally: Tally
) -> None:
    """Acknowledgement: until the webhook's 200. Turn: until the answer reaches the stand-in."""
    token = f"bench-{uuid.uuid4().hex}"
    body = json.dumps(
        {"destination": "Ubench", "events": [line_event(user, text, token)]}, ensure_ascii=False
    ).encode()
    answered = replies.expect(token, user)
    headers = {"content-type": "application/json", "x-line-signature": signed(body)}
    started = time.perf_counter()
    try:
        response = await client.post("/webhooks/line", content=body, headers=headers)
        acknowledged = time.perf_counter()
        response.raise_for_status()
    except httpx.HTTPError:
        replies.forget(token, user)
        tally.errors += 1
        return
    tally.ack_ms.append((acknowledged - started) * 1000)
    try:
        arrived, fallback = await asyncio.wait_for(answered, CLIENT_TIMEOUT_S)
    except asyncio.TimeoutError:
        replies.forget(token, user)
        tally.errors += 1
        return
    tally.ms.append((arrived - started) * 1000)
    tally.fallbacks += fallback


# -- conversations and phases --------------------------------------------------------------------

Turn = Callable[[str, str], Awaitable[None]]


async def converse(
    turn: Turn, name: str, deadline: float, think: tuple[float, float], rng: random.Random
) -> None:
    """One child after another on one seat: whole conversations with a pause before each turn,
    until the deadline (a turn under way is finished)."""

    async def pause(seconds: float) -> None:  # cut short by the deadline
        await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic())))

    await pause(rng.uniform(0, think[1]))  # seats start spread out, not all at once
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


async def phase(meter: Meter, seats: dict[str, tuple[int, Turn]], cfg: Config, seed: int) -> Phase:
    """Runs every path's seats for cfg.phase_s seconds, side by side."""
    meter.reset_peak()
    cpu_before = meter.cpu()
    started = time.monotonic()
    deadline = started + cfg.phase_s
    rng = random.Random(seed)
    jobs = []
    for path, (count, turn) in seats.items():
        for seat in range(count):
            seat_rng = random.Random(rng.random())
            jobs.append(
                converse(turn, f"bench-{seed}-{path}-{seat}", deadline, cfg.think_s, seat_rng)
            )
    await asyncio.gather(*jobs)
    seconds = time.monotonic() - started
    cpu_after = meter.cpu()
    return Phase(
        seconds=seconds,
        cpu_s={n: cpu_after[n] - cpu_before[n] for n in cpu_before},
        peak_rss=meter.reset_peak(),
    )


async def overhead_phase(
    web: httpx.AsyncClient, rasa: httpx.AsyncClient, conversations: int
) -> tuple[Tally, Tally]:
    """One conversation at a time, no pause; each turn goes through the gateway and, right after,
    the same text goes straight to Rasa for a twin conversation, so both meet the same noise."""
    gateway, direct = Tally(), Tally()
    for number in range(conversations):
        script = SCRIPTS[number % len(SCRIPTS)]
        user = f"bench-overhead-{number}-{uuid.uuid4().hex[:8]}"
        for text in script:
            await webchat_turn(web, user, text, gateway)
            await direct_turn(rasa, user + "-direct", text, direct)
    return gateway, direct


# -- before the stack: training time and parse time ----------------------------------------------


def training_inputs_digest() -> str:
    digest = hashlib.sha256()
    for pattern in TRAINING_INPUTS:
        for path in sorted(ROOT.glob(pattern)):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def engine_env() -> dict[str, str]:
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}


def training_time(cfg: Config) -> dict[str, Any]:
    """A real training of the project model, timed once per version of its inputs: into a
    temporary --out and with an empty Rasa cache, so nothing is reused from earlier trainings.
    models/ is left alone. The result is kept in var/bench/train.json with the inputs' digest."""
    record = cfg.out / "train.json"
    digest = training_inputs_digest()
    if record.exists() and cfg.train != "1":
        cached = json.loads(record.read_text())
        if cached.get("inputs_sha256") == digest:
            return {**cached, "source": "timed earlier for these training inputs"}
    if cfg.train == "0" or (cfg.quick and cfg.train != "1"):
        return {"train_s": None, "source": "skipped (no timing for these training inputs)"}
    print("timing a training of the project model (takes a few minutes)...", flush=True)
    with tempfile.TemporaryDirectory(dir=cfg.out) as tmp:
        env = {**engine_env(), "RASA_CACHE_DIRECTORY": str(Path(tmp) / "cache")}
        before = loadavg()
        started = time.perf_counter()
        with (cfg.out / "train.log").open("wb") as log:
            subprocess.run(
                [str(ENGINE_BIN / "rasa"), "train", "--fixed-model-name", "assistant"]
                + ["--out", str(Path(tmp) / "models"), "--quiet"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
            )
        seconds = time.perf_counter() - started
    result = {
        "train_s": seconds,
        "inputs_sha256": digest,
        "measured_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_before": before,
    }
    record.write_text(json.dumps(result, indent=2))
    return {**result, "source": "timed in this run"}


def parse_time(cfg: Config) -> dict[str, Any]:
    """`make eval`'s parse time per message (scripts/bench_parse.py, in the engine environment)."""
    if not cfg.parse:
        return {"project": None, "baseline": None, "source": "skipped"}
    if not cfg.eval_path.exists():
        return {"project": None, "baseline": None, "source": f"no eval set at {cfg.eval_path}"}
    print("timing NLU parses, project pipeline and baseline (about two minutes)...", flush=True)
    result = cfg.out / "parse.json"
    with (cfg.out / "parse.log").open("wb") as log:
        subprocess.run(
            [str(ENGINE_BIN / "python"), "-m", "scripts.bench_parse"]
            + ["--eval", str(cfg.eval_path), "--out", str(result)],
            cwd=ROOT,
            env=engine_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return {**json.loads(result.read_text()), "source": "measured in this run"}


# -- the stack -----------------------------------------------------------------------------------


def migrate(database_url: str) -> None:
    subprocess.run(
        [str(GATEWAY_PYTHON.parent / "alembic"), "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
    )


def start_one_by_one(stack: Stack, timeout: float = 300) -> dict[str, float]:
    """Starts each process alone and times it from launch to its first healthy answer."""
    env = stack.env()
    seconds = {}
    for name in PROCESSES:
        process = stack.processes[name]
        started = time.monotonic()
        process.start(env)
        while not process.healthy():
            if not process.alive():
                raise RuntimeError(f"{name} exited; see {process.log}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{name} not healthy after {timeout:.0f}s; see {process.log}")
            time.sleep(0.1)
        seconds[name] = time.monotonic() - started
        print(f"  {name:<8} up in {seconds[name]:.1f} s", flush=True)
    return seconds


# -- the run -------------------------------------------------------------------------------------


async def run_level(
    concurrency: int,
    seed: int,
    web: httpx.AsyncClient,
    rasa: httpx.AsyncClient,
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
        {
            "web": (concurrency - line_seats, lambda u, t: webchat_turn(web, u, t, gateway)),
            "line": (line_seats, lambda u, t: line_turn(web, replies, "U" + u, t, line)),
        },
        cfg,
        seed,
    )
    await asyncio.sleep(settle)
    to_rasa = await phase(
        meter,
        {"direct": (concurrency, lambda u, t: direct_turn(rasa, u, t, direct))},
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


async def measure(stack: Stack, standin: StandIn, cfg: Config) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    web = httpx.AsyncClient(base_url=stack.gateway_url, timeout=CLIENT_TIMEOUT_S, limits=limits)
    rasa = httpx.AsyncClient(base_url=stack.rasa_url, timeout=CLIENT_TIMEOUT_S, limits=limits)
    replies = LineReplies(standin, asyncio.get_running_loop())
    meter = Meter({name: stack.processes[name].popen.pid for name in PROCESSES})
    meter.start()
    try:
        print("warming up (first inferences compile the model's graphs)...", flush=True)
        warm = Tally()
        for number, script in enumerate(SCRIPTS[:2]):
            for text in script:
                await webchat_turn(web, f"bench-warmup-{number}", text, warm)
                await direct_turn(rasa, f"bench-warmup-direct-{number}", text, warm)
                await line_turn(web, replies, f"Ubenchwarmup{number}", text, warm)
        await asyncio.sleep(3)
        idle_rss = meter.rss()

        print(f"overhead: {cfg.overhead_conversations} conversations one at a time...", flush=True)
        overhead = await overhead_phase(web, rasa, cfg.overhead_conversations)

        levels: dict[str, dict[str, Any]] = {}
        load_peak: dict[str, float] = {}
        for seed, concurrency in enumerate(cfg.levels, start=1):
            level = await run_level(concurrency, seed, web, rasa, replies, meter, cfg)
            for phase_run in (level["through_gateway"], level["to_rasa"]):
                for name, value in phase_run.peak_rss.items():
                    load_peak[name] = max(load_peak.get(name, 0.0), value)
            levels[str(concurrency)] = level
        await asyncio.sleep(5)
        after_rss = meter.rss()
        return {
            "idle_rss": idle_rss,
            "load_rss": load_peak,
            "after_rss": after_rss,
            "overhead": overhead,
            "levels": levels,
            "line_pushes": replies.pushes,
        }
    finally:
        await meter.stop()
        await web.aclose()
        await rasa.aclose()


def build_report(
    cfg: Config,
    measured: dict[str, Any],
    startup: dict[str, float],
    train: dict[str, Any],
    parse: dict[str, Any],
    database: str,
    started: float,
    load_before: list[float],
) -> tuple[dict[str, Any], dict[str, Any]]:
    gateway_o, direct_o = measured["overhead"]
    overhead_ratio = None
    if gateway_o.ms and direct_o.ms:
        overhead_ratio = percentile(gateway_o.ms, 50) / percentile(direct_o.ms, 50)
    levels = measured["levels"]
    report: dict[str, Any] = {
        "gateway_overhead_p50_ratio": overhead_ratio,
        "overhead": {
            "gateway_ms": summary(gateway_o.ms),
            "rasa_direct_ms": summary(direct_o.ms),
            "added_p50_ms": (
                percentile(gateway_o.ms, 50) - percentile(direct_o.ms, 50)
                if overhead_ratio
                else None
            ),
            "errors": gateway_o.errors + direct_o.errors,
            "fallbacks": gateway_o.fallbacks,
        },
        "turn_ms": {c: summary(v["gateway"].ms) for c, v in levels.items()},
        "rasa_direct_ms": {c: summary(v["direct"].ms) for c, v in levels.items()},
        "throughput": {
            c: (v["gateway"].answered + v["line"].answered) / v["through_gateway"].seconds
            for c, v in levels.items()
        },
        "bot_answer_throughput": {
            c: (
                v["gateway"].answered
                + v["line"].answered
                - v["gateway"].fallbacks
                - v["line"].fallbacks
            )
            / v["through_gateway"].seconds
            for c, v in levels.items()
        },
        "rasa_direct_throughput": {
            c: v["direct"].answered / v["to_rasa"].seconds for c, v in levels.items()
        },
        "errors": {c: v["gateway"].errors + v["line"].errors for c, v in levels.items()},
        "errors_by_path": {
            c: {
                "webchat": v["gateway"].errors,
                "line": v["line"].errors,
                "rasa_direct": v["direct"].errors,
            }
            for c, v in levels.items()
        },
        "fallbacks": {c: v["gateway"].fallbacks + v["line"].fallbacks for c, v in levels.items()},
        "rasa_direct_no_answer": {c: v["direct"].fallbacks for c, v in levels.items()},
        "handoffs": {c: v["gateway"].handoffs for c, v in levels.items()},
        "line_ack_p99_ms": (
            summary(levels["50"]["line"].ack_ms)["p99"] if "50" in levels else None
        ),
        "line_ack_ms": {c: summary(v["line"].ack_ms) for c, v in levels.items()},
        "line_turn_ms": {c: summary(v["line"].ms) for c, v in levels.items()},
        "line_conversations": {c: v["line_seats"] for c, v in levels.items()},
        "line_pushes": measured["line_pushes"],
        "rss_mb": {
            name: {
                "idle": measured["idle_rss"].get(name),
                "load": measured["load_rss"].get(name),
                "after": measured["after_rss"].get(name),
            }
            for name in (*PROCESSES, "total")
        },
        "cpu_ms_per_turn": {},
        "startup_s": startup,
        "train_s": train.get("train_s"),
        "train": train,
        "parse_ms": {"project": parse.get("project"), "baseline": parse.get("baseline")},
        "parse": parse,
        "database": database,
        "config": {
            "levels": list(cfg.levels),
            "phase_s": cfg.phase_s,
            "think_s": list(cfg.think_s),
            "overhead_conversations": cfg.overhead_conversations,
            "rasa_timeout_s": float(os.environ.get("RASA_TIMEOUT_S", "4")),
            "quick": cfg.quick,
            "scripts": len(SCRIPTS),
            "turns_per_conversation": TURNS_PER_CONVERSATION,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
        },
        "duration_s": time.monotonic() - started,
    }
    for c, v in levels.items():
        turns = v["gateway"].answered + v["line"].answered
        spent = v["through_gateway"].cpu_s
        per_turn = {name: 1000 * s / turns if turns else None for name, s in spent.items()}
        per_turn["total"] = 1000 * sum(spent.values()) / turns if turns else None
        report["cpu_ms_per_turn"][c] = per_turn
    report["acceptance"] = acceptance(report)
    samples = {
        "gateway": {c: v["gateway"].ms for c, v in levels.items()},
        "direct": {c: v["direct"].ms for c, v in levels.items()},
        "line_ack": {c: v["line"].ack_ms for c, v in levels.items()},
        "line_turn": {c: v["line"].ms for c, v in levels.items()},
        "overhead_gateway": gateway_o.ms,
        "overhead_direct": direct_o.ms,
    }
    return report, samples


def acceptance(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's acceptance limits, each with the measured value (None: not measured)."""

    def at(table: dict[str, Any], level: str, key: str | None = None) -> Any:
        value = table.get(level)
        return value.get(key) if key and isinstance(value, dict) else value

    checks = {
        "gateway p50 / Rasa p50": (report["gateway_overhead_p50_ratio"], 1.15),
        "p95 ms per turn at 10": (at(report["turn_ms"], "10", "p95"), 300),
        "errors at 200": (at(report["errors"], "200"), 0),
        "LINE ack p99 ms at 50": (report["line_ack_p99_ms"], 100),
        "resident MB, all under load": (report["rss_mb"]["total"]["load"], 2000),
    }
    return {
        name: {"value": value, "limit": limit, "ok": None if value is None else value <= limit}
        for name, (value, limit) in checks.items()
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'conc':>5} {'gateway p50/p95/p99 ms':>24} {'Rasa direct p50/p95/p99':>24} "
        f"{'turns/s gw/Rasa':>16} {'errors':>6} {'fallbk':>6} {'LINE ack p99':>12}"
    ]
    for c in report["turn_ms"]:
        g, d = report["turn_ms"][c], report["rasa_direct_ms"][c]
        lines.append(
            f"{c:>5} {_ms(g['p50']) + ' / ' + _ms(g['p95']) + ' / ' + _ms(g['p99']):>24} "
            f"{_ms(d['p50']) + ' / ' + _ms(d['p95']) + ' / ' + _ms(d['p99']):>24} "
            f"{report['throughput'][c]:>8.1f} / {report['rasa_direct_throughput'][c]:<5.1f} "
            f"{report['errors'][c]:>6} {report['fallbacks'][c]:>6} "
            f"{_ms(report['line_ack_ms'][c]['p99']):>12}"
        )
    cpu_level = "10" if "10" in report["cpu_ms_per_turn"] else next(iter(report["turn_ms"]), "-")
    cpu = report["cpu_ms_per_turn"].get(cpu_level, {})
    o = report["overhead"]
    ratio = report["gateway_overhead_p50_ratio"]
    lines += [
        "",
        f"overhead, one conversation at a time: gateway p50 {_ms(o['gateway_ms']['p50'])} ms, "
        f"Rasa direct p50 {_ms(o['rasa_direct_ms']['p50'])} ms, ratio "
        f"{'-' if ratio is None else f'{ratio:.3f}'} (n={o['gateway_ms']['n']})",
        "",
        f"{'process':<10}{'RSS idle MB':>12}{'RSS load MB':>12}{'start-up s':>12}"
        f"{'CPU ms/turn at ' + cpu_level:>20}",
    ]
    for name, rss in report["rss_mb"].items():
        startup = report["startup_s"].get(name)
        lines.append(
            f"{name:<10}{_ms(rss['idle']):>12}{_ms(rss['load']):>12}"
            f"{'-' if startup is None else f'{startup:.1f}':>12}"
            f"{_ms(cpu.get(name)):>20}"
        )
    parse = report["parse_ms"]
    train = report["train_s"]
    lines += [
        "",
        f"training: {'-' if train is None else f'{train:.0f} s'} ({report['train']['source']})",
        f"NLU parse ms per message: project {_ms(parse['project'])}, "
        f"baseline {_ms(parse['baseline'])} ({report['parse']['source']})",
        "",
        "acceptance:",
    ]
    for name, check in report["acceptance"].items():
        verdict = {True: "ok", False: "FAILS", None: "not measured"}[check["ok"]]
        value = check["value"]
        shown = "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else value)
        lines.append(f"  {name:<30} {shown!s:>10}  (limit {check['limit']})  {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval", type=Path, default=ROOT.parent / "shared" / "eval" / "dev.yml")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    cfg = Config.from_env(args.eval.resolve(), args.out.resolve())
    cfg.out.mkdir(parents=True, exist_ok=True)
    started, load_before = time.monotonic(), loadavg()

    train = training_time(cfg)
    parse = parse_time(cfg)

    var = Path(tempfile.mkdtemp(prefix="stack-", dir=cfg.out))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{var / 'gateway.db'}"
    database = database_url.split(":", 1)[0].split("+", 1)[0]
    migrate(database_url)
    standin = StandIn()
    stack = Stack.on_free_ports(
        var,
        {
            "DATABASE_URL": database_url,
            "USER_ID_SECRET": "bench-user-id-secret",
            **standin.line_env(LINE_SECRET, LINE_TOKEN),
        },
    )
    print(f"starting the stack one process at a time ({database}; var: {var})...", flush=True)
    ok = False
    try:
        startup = start_one_by_one(stack)
        measured = asyncio.run(measure(stack, standin, cfg))
        ok = True
    finally:
        stack.stop()
        standin.stop()
        if ok and not cfg.keep:
            shutil.rmtree(var, ignore_errors=True)
        else:
            print(f"the stack's databases and logs are kept in {var}", file=sys.stderr)

    report, samples = build_report(
        cfg, measured, startup, train, parse, database, started, load_before
    )
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (cfg.out / "samples.json").write_text(json.dumps(samples))
    from scripts.bench_chart import draw

    draw(report, samples, cfg.out / "report.png")
    print()
    print(table(report))
    print(f"\nwritten: {cfg.out / 'report.json'}, {cfg.out / 'report.png'}")


if __name__ == "__main__":
    main()
