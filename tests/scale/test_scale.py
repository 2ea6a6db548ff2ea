"""Two of everything: two gateways and two Rasa servers (each with its action server) sharing
PostgreSQL and Redis behind nginx, driven by 200 concurrent web-chat conversations of several
turns, a claim race across both gateways, and 200 conversations at a person's pace during which
a gateway and then a Rasa server are killed (SIGKILL) and restarted. Run by `make scale-test`
(part of `make test`).

Both gateways list both Rasa servers in RASA_URL, in the same order: each child has one home
server in every replica (bot/rasa_client.py), and while it is down the other takes its children.
Rasa renders its sentences at `/nlg` through nginx (NLG_URL), so a Rasa server still speaks while
the gateway beside it is down."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.identity import user_key  # noqa: E402
from bot.inbox import LEASE_S  # noqa: E402
from scripts.stack import Stack, free_port  # noqa: E402
from tests.gateway.conftest import Console, migrate  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432/{name}"
REDIS = "redis://127.0.0.1:6379/7"
SECRET = "scale-secret"
CONVERSATIONS = int(os.environ.get("SCALE_CONVERSATIONS", "200"))
CASES = 20
IN_FLIGHT = 8  # RASA_MAX_IN_FLIGHT: turns each gateway has at each Rasa server at once
TURNS = {
    "th": ["สวัสดีค่ะ", "แจ้งเรื่องแบบนี้ได้ที่ไหนบ้าง", "ขอบคุณนะคะ"],
    "en": ["hello", "where can i report this", "thank you"],
}
# The kill test: children at a person's pace, slow enough that one Rasa server takes all of them
# while the other loads its model on the second core (what is measured is the kill, not the
# load limit: `make bench` measures that).
PACE_S = (10.0, 20.0)
GATEWAY_KILL_AT_S = 20.0  # after the load began (every child has started by then)
RASA_KILL_AFTER_S = 15.0  # after the killed gateway is back
TAIL_S = 20.0  # of load after the killed Rasa server is back, which then has children again
RESTART_TIMEOUT_S = 300.0
# The page (bot/static/webchat.js) shows "offline" when its POST fails and polls the later
# messages every 1.5 s: a turn the killed gateway had accepted is answered by the other one once
# the killed one's lease runs out (bot/inbox.py).
POLL_S = 1.5
RECOVERY_S = LEASE_S + 70.0
SLOW_S = 10.0  # a turn's wait worth printing its conversation for
NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream gateways {{ server 127.0.0.1:{a}; server 127.0.0.1:{b}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # Who the child is, for the gateways' per-address limit (TRUSTED_PROXIES, bot/proxies.py).
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_read_timeout 120s;
    proxy_buffering off;
    location / {{
      proxy_pass http://gateways;
    }}
    # Rasa's sentences (NLG_URL): rendering one twice is harmless, so one cut off by a gateway
    # that died is asked of the other. A child's POST is never sent twice (nginx's default).
    location = /nlg {{
      proxy_pass http://gateways;
      proxy_next_upstream error timeout http_502 non_idempotent;
    }}
  }}
}}
"""


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> str:
    name = f"scale_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(POSTGRES.format(name="test"), autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES.format(name=name)
    migrate(url)
    yield url
    with psycopg.connect(POSTGRES.format(name="test"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@dataclass
class Replicas:
    balancer: str  # nginx
    stacks: list[Stack]

    @property
    def gateways(self) -> list[str]:
        return [stack.gateway_url for stack in self.stacks]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, database):
    """Two stacks behind nginx, everything running."""
    redis.Redis.from_url(REDIS).flushdb()
    port = free_port()
    shared = {
        "DATABASE_URL": database,
        "REDIS_URL": REDIS,
        "USER_ID_SECRET": SECRET,
        "RASA_TIMEOUT_S": "60",
        "RASA_MAX_IN_FLIGHT": str(IN_FLIGHT),
        "RASA_SERVERS": "1",  # one Rasa server per replica; each gateway is given both
        # Rasa renders through the balancer, so every gateway must let every Rasa in.
        "NLG_URL": f"http://127.0.0.1:{port}/nlg",
        "NLG_TOKEN": secrets.token_urlsafe(24),
        # Each console races for every case: the race is tested here, not the load limit.
        "CONSOLE_MAX_OPEN_CHATS": str(CASES),
        # The per-address limit stays on: nginx passes each child's address on, and these
        # children, all on this machine, are not limited by address (bot/ratelimit.py).
    }
    stacks = [
        Stack.on_free_ports(tmp_path_factory.mktemp(f"replica{i}"), dict(shared)) for i in (1, 2)
    ]
    both = ",".join(stack.rasa_url for stack in stacks)
    for stack in stacks:
        stack.extra_env["RASA_URL"] = both
    nginx_dir = tmp_path_factory.mktemp("nginx")
    conf = NGINX_CONF.format(
        dir=nginx_dir, port=port, a=stacks[0].gateway_port, b=stacks[1].gateway_port
    )
    (nginx_dir / "nginx.conf").write_text(conf)
    nginx = subprocess.Popen(
        [
            shutil.which("nginx") or "/usr/sbin/nginx",
            "-c",
            str(nginx_dir / "nginx.conf"),
            "-p",
            str(nginx_dir),
            "-g",
            "daemon off;",
        ],
        stderr=subprocess.STDOUT,
        stdout=(nginx_dir / "nginx.log").open("wb"),
    )
    try:
        # Together: a gateway is ready only once it sees both Rasa servers.
        with ThreadPoolExecutor(len(stacks)) as starting:
            list(starting.map(Stack.start, stacks))
        yield Replicas(f"http://127.0.0.1:{port}", stacks)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        for stack in stacks:
            stack.stop()


@dataclass
class Turn:
    """One message a child sent, and what came back; times in seconds since the load began."""

    words: str
    sent: float
    answered: float | None = None
    cut: int | str | None = None  # the POST's status or error when it brought no answer
    messages: list[dict] = field(default_factory=list)

    @property
    def fallbacks(self) -> int:
        return sum(1 for m in self.messages if m["sender"] == "fallback")


@dataclass
class Child:
    user: str
    turns: list[Turn] = field(default_factory=list)
    stored: list[dict] = field(default_factory=list)  # later messages from 0

    def told(self) -> list[dict]:
        """What the page showed: the stored messages it was answered with or polled."""
        return [m for turn in self.turns for m in turn.messages if m.get("cursor")]

    def story(self) -> str:
        """The conversation as the child saw it and as stored, for a failure's printout."""
        turns = [
            f"  sent {t.sent:.1f} s, answered {t.answered and round(t.answered, 1)} s, cut {t.cut}:"
            f" {[(m['sender'], m.get('cursor')) for m in t.messages]}"
            for t in self.turns
        ]
        stored = [(m["sender"], m["cursor"]) for m in self.stored]
        return "\n".join([f"{self.user}:", *turns, f"  stored: {stored}"])


async def later(client: httpx.AsyncClient, user: str, after: int) -> list[dict]:
    """Every message for `user` after the cursor `after`, as the page fetches them (paged)."""
    messages: list[dict] = []
    while True:
        response = await client.get("/webchat/messages", params={"user": user, "after": after})
        response.raise_for_status()
        page = response.json()["messages"]
        messages += page
        if len(page) < 100:  # bot/channels/webchat.py MAX_FETCH
            return messages
        after = page[-1]["cursor"]


async def recover(client: httpx.AsyncClient, user: str, after: int) -> list[dict]:
    """What the page does after a POST brought no answer: polls until the answer arrives."""
    deadline = time.monotonic() + RECOVERY_S
    while time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        try:
            found = await later(client, user, after)
        except httpx.HTTPError:
            continue  # offline for a moment: the next poll catches up from the same cursor
        if found:
            return found
    return []


async def say(
    client: httpx.AsyncClient, user: str, words: str, after: int, clock: Callable[[], float]
) -> Turn:
    """One message, answered through its POST or, when that brings no answer, as the page
    recovers one: by polling the later messages after the cursor `after`."""
    turn = Turn(words, clock())
    try:
        response = await client.post("/webchat/messages", json={"user": user, "text": words})
        if response.status_code == 200:
            turn.messages = response.json()["messages"]
        else:
            turn.cut = response.status_code
    except httpx.HTTPError as exc:
        turn.cut = type(exc).__name__
    if turn.cut is not None:
        turn.messages = await recover(client, user, after)
    if turn.messages:
        turn.answered = clock()
    return turn


async def talk(
    client: httpx.AsyncClient,
    child: Child,
    script: list[str],
    clock: Callable[[], float],
    pace: tuple[float, float] | None = None,
    until: asyncio.Event | None = None,
) -> Child:
    """Sends the script's turns one after another, each once its answer came; at `pace`, round
    the script again until `until` is set. A message the page could only say "offline" to, and
    whose answer never came, the child sends again, once (the web chat's API has no message id
    that would let the page send it again itself)."""
    cursor = 0
    for words in itertools.cycle(script) if until is not None else script:
        for _ in range(2):
            turn = await say(client, child.user, words, cursor, clock)
            child.turns.append(turn)
            if turn.messages:
                break
        cursor = max([cursor, *(m["cursor"] for m in turn.messages if m.get("cursor"))])
        if until is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(until.wait(), random.uniform(*pace))
            if until.is_set():
                break
    child.stored = await later(client, child.user, 0)
    return child


@dataclass
class Verdict:
    """What the children were told, checked against what the gateways stored."""

    turns: int
    lost: int  # accepted (written to the inbox) and never answered
    refused: int  # cut off before it was accepted: the page said "offline", the child resent it
    duplicated: int  # answered more than once
    misordered: int  # conversations whose answers came out of order
    diverged: int  # conversations where what the child was told is not what is stored
    fallbacks: int
    cut: int  # turns whose POST brought no answer (the page shows "offline", then polls)
    reworked: int  # turns a gateway started on twice (their words stored twice), answered once
    unfinished: int  # rows the inbox still holds

    def line(self) -> str:
        return (
            f"lost {self.lost}, duplicated {self.duplicated}, misordered {self.misordered}, "
            f"diverged {self.diverged}, fallbacks {self.fallbacks}"
        )


def verdict(children: list[Child], database: str) -> Verdict:
    """Checks each conversation: every turn answered, once, in order, as stored. Answered twice
    shows in the database: a child waits for each answer, so a conversation's stored answers
    come in as many runs (between the child's words) as the child had turns answered."""
    keys = {user_key(SECRET, "webchat", child.user): child for child in children}
    runs = dict.fromkeys(keys, 0)
    words = dict.fromkeys(keys, 0)
    with psycopg.connect(database) as connection:
        rows = connection.execute(
            "SELECT c.user_key, m.sender FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE c.user_key = ANY(%s) ORDER BY m.id",
            (list(keys),),
        ).fetchall()
        inbox = dict.fromkeys(keys, (0, 0))
        inbox |= {
            key: (accepted, finished)
            for key, accepted, finished in connection.execute(
                "SELECT user_key, count(*), count(finished_at) FROM inbound"
                " WHERE user_key = ANY(%s) GROUP BY user_key",
                (list(keys),),
            )
        }
    previous: dict[str, str] = {}
    for key, sender in rows:
        if sender == "user":
            words[key] += 1
        elif previous.get(key, "user") == "user":
            runs[key] += 1
        previous[key] = sender
    lost = refused = duplicated = misordered = diverged = 0
    for key, child in keys.items():
        answered = [turn for turn in child.turns if turn.messages]
        never_accepted = len(child.turns) - inbox[key][0]
        refused += never_accepted
        lost += len(child.turns) - len(answered) - never_accepted
        duplicated += max(0, runs[key] - len(answered))
        cursors = [m["cursor"] for m in child.told()]
        misordered += cursors != sorted(cursors)
        duplicated += len(cursors) - len(set(cursors))
        if _shown(child.stored) != _shown(child.told()):
            diverged += 1
            print(f"\ndiverged: {child.story()}")
    return Verdict(
        turns=sum(len(child.turns) for child in children),
        lost=lost,
        refused=refused,
        duplicated=duplicated,
        misordered=misordered,
        diverged=diverged,
        fallbacks=sum(turn.fallbacks for child in children for turn in child.turns),
        cut=sum(1 for child in children for turn in child.turns if turn.cut is not None),
        reworked=sum(max(0, words[key] - inbox[key][0]) for key in keys),
        unfinished=sum(accepted - finished for accepted, finished in inbox.values()),
    )


def _shown(messages: list[dict]) -> list[tuple[int, str, str]]:
    return [(m["cursor"], m["sender"], m["text"]) for m in messages]


def children(count: int, prefix: str) -> list[tuple[Child, list[str]]]:
    """Children with their scripts, Thai and English alternately."""
    return [
        (Child(f"{prefix}-{i}-{uuid.uuid4().hex[:6]}"), TURNS["th" if i % 2 else "en"])
        for i in range(count)
    ]


def client(balancer: str, count: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=50)
    return httpx.AsyncClient(base_url=balancer, timeout=180, limits=limits)


def test_200_conversations_through_two_gateways_lose_nothing(replicas, database):
    async def drive() -> list[Child]:
        async with client(replicas.balancer, CONVERSATIONS) as http:
            return await asyncio.gather(
                *(talk(http, child, script, clock) for child, script in everyone)
            )

    everyone = children(CONVERSATIONS, "scale")
    started = time.monotonic()

    def clock() -> float:
        return time.monotonic() - started

    result = verdict(asyncio.run(drive()), database)
    elapsed = clock()
    print(
        f"\nscale: {CONVERSATIONS} conversations, {result.turns} turns through 2 gateways in "
        f"{elapsed:.1f} s ({result.turns / elapsed:.1f} turns/s): {result.line()}"
    )
    assert (result.lost, result.duplicated, result.misordered, result.diverged) == (0, 0, 0, 0)
    assert (result.fallbacks, result.cut, result.refused, result.unfinished) == (0, 0, 0, 0)
    assert result.reworked == 0


def test_one_claim_wins_across_gateways_and_consoles_hear_each_other(replicas, database):
    balancer, gateways = replicas.balancer, replicas.gateways
    from scripts.counsellor import create

    logins = []
    for name in ("พี่เอ", "พี่บี"):
        username, password = f"c{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
        asyncio.run(create(database, username, name, password, "counsellor"))
        logins.append((username, password))
    consoles = []
    for gateway, login in zip(gateways, logins, strict=True):
        console = Console(gateway)
        assert console.login(*login).status_code == 303
        consoles.append(console)

    with httpx.Client(base_url=balancer, timeout=60) as child:
        for i in range(CASES):
            user = f"race-{i}-{uuid.uuid4().hex[:6]}"
            for words in ("/talk_to_human", "/affirm", "/handoff_agree"):
                assert child.post(
                    "/webchat/messages", json={"user": user, "text": words}
                ).is_success
    queued = [c["id"] for c in consoles[0].get("/console/api/queue")["queued"]]
    assert len(queued) >= CASES

    # A console on gateway B hears a claim made on gateway A.
    heard: list[dict] = []

    def listen() -> None:
        with consoles[1].client.stream("GET", "/console/api/events", timeout=30) as events:
            for line in events.iter_lines():
                if line.startswith("data:"):
                    heard.append(json.loads(line[5:]))
                    return

    async def race() -> list[tuple[int, int]]:
        async def claim(console: Console, case_id: int) -> int:
            return (
                await asyncio.to_thread(console.post, f"/console/api/cases/{case_id}/claim")
            ).status_code

        listener = asyncio.create_task(asyncio.to_thread(listen))
        await asyncio.sleep(1)
        outcomes = []
        for case_id in queued[:CASES]:
            a, b = await asyncio.gather(claim(consoles[0], case_id), claim(consoles[1], case_id))
            outcomes.append((a, b))
        await asyncio.wait_for(listener, 30)
        return outcomes

    outcomes = asyncio.run(race())
    wins = [sorted(o) for o in outcomes]
    print(
        f"\nclaim race across 2 gateways: {len(outcomes)} cases,"
        f" outcomes {sorted(set(map(tuple, wins)))}"
    )
    # The loser hears 409 (a colleague won), or 404 when it reads the case only after the
    # winner took it (bot/console/policy.py: another's case is not the loser's to see).
    assert all(w in ([200, 404], [200, 409]) for w in wins), outcomes
    assert heard and heard[0]["type"] == "changed"


@dataclass
class Kills:
    """When each kill and each return happened, in seconds since the load began."""

    gateway_killed: float = 0.0
    gateway_back: float = 0.0
    rasa_killed: float = 0.0
    rasa_dead: float = 0.0  # the kill returned: the process is gone
    rasa_back: float = 0.0

    def at_the_rasa_kill(self, turn: Turn) -> bool:
        """The turn may have been at the Rasa server, or on its way there, when it died."""
        return turn.sent <= self.rasa_dead and (turn.answered or float("inf")) >= self.rasa_killed


async def disrupt(stacks: list[Stack], clock: Callable[[], float]) -> Kills:
    """Kills the first replica's gateway and, once it is back, the second replica's Rasa server,
    each restarted at once as a supervisor would; back means every gateway is ready again."""
    kills = Kills()

    async def kill(stack: Stack, name: str) -> None:
        await asyncio.to_thread(stack.processes[name].kill)

    async def restart(stack: Stack, name: str) -> None:
        await asyncio.to_thread(stack.start, (name,), RESTART_TIMEOUT_S)
        for other in stacks:  # every gateway sees the restarted process up again
            await asyncio.to_thread(other.wait, (), RESTART_TIMEOUT_S)

    await asyncio.sleep(GATEWAY_KILL_AT_S)
    kills.gateway_killed = clock()
    await kill(stacks[0], "gateway")
    await restart(stacks[0], "gateway")
    kills.gateway_back = clock()
    await asyncio.sleep(RASA_KILL_AFTER_S)
    kills.rasa_killed = clock()
    await kill(stacks[1], "rasa")
    kills.rasa_dead = clock()
    await restart(stacks[1], "rasa")
    kills.rasa_back = clock()
    await asyncio.sleep(TAIL_S)
    return kills


def test_a_gateway_and_a_rasa_server_killed_mid_load_lose_nothing(replicas, database):
    """No turn lost, none answered twice, each conversation's answers in order, while a gateway
    and a Rasa server die (SIGKILL) under 200 conversations and come back.

    The turns at the Rasa server when it died (their connections closed or reset) go to the
    other server (bot/rasa_client.py), which serves them once the dead server's lock on the
    child has expired (TICKET_LOCK_LIFETIME, scripts/ticket_lock.py). The bar, fail-safe
    answers: none, except at that moment, at most RASA_MAX_IN_FLIGHT per gateway (a turn whose
    answer was cut off half-way is not sent again). The killed gateway's accepted turns are
    answered by the other once its lease runs out (bot/inbox.py); the other Rasa server takes
    the dead one's children. A message cut off before the killed gateway wrote it down was never
    accepted: the page says "offline" and the child sends it again; the number is reported."""
    everyone = children(CONVERSATIONS, "kill")
    started = time.monotonic()

    def clock() -> float:
        return time.monotonic() - started

    async def drive() -> tuple[list[Child], Kills]:
        stop = asyncio.Event()

        async def begin(child: Child, script: list[str]) -> Child:
            await asyncio.sleep(random.uniform(*PACE_S) - PACE_S[0])  # not all in one second
            return await talk(http, child, script, clock, PACE_S, stop)

        async with client(replicas.balancer, CONVERSATIONS) as http:
            talking = asyncio.gather(*(begin(child, script) for child, script in everyone))
            try:
                kills = await disrupt(replicas.stacks, clock)
            finally:
                stop.set()
            return await talking, kills

    done, kills = asyncio.run(drive())
    elapsed = clock()
    result = verdict(done, database)
    turns = [turn for child in done for turn in child.turns]
    at_kill = sum(turn.fallbacks for turn in turns if kills.at_the_rasa_kill(turn))
    for child in done:
        if any(t.fallbacks or (t.answered or elapsed) - t.sent > SLOW_S for t in child.turns):
            print(f"\nslow or fail-safe: {child.story()}")
    waits = sorted(turn.answered - turn.sent for turn in turns if turn.answered is not None)
    print(
        f"\nscale, kills: {CONVERSATIONS} conversations, {result.turns} turns in {elapsed:.1f} s: "
        f"{result.line()} ({at_kill} at the Rasa kill); gateway killed at "
        f"{kills.gateway_killed:.1f} s, back after {kills.gateway_back - kills.gateway_killed:.1f}"
        f" s, {result.cut} POSTs cut off, {result.refused} of them before they were accepted"
        f" (sent again), {result.reworked} turns started twice; Rasa killed at "
        f"{kills.rasa_killed:.1f} s, back after {kills.rasa_back - kills.rasa_killed:.1f} s; "
        f"wait p50 {waits[len(waits) // 2]:.2f} s, p99 {waits[len(waits) * 99 // 100]:.1f} s, "
        f"longest {waits[-1]:.1f} s"
    )
    assert (result.lost, result.duplicated, result.misordered, result.diverged) == (0, 0, 0, 0)
    assert result.unfinished == 0
    assert result.refused <= result.cut
    assert result.fallbacks == at_kill <= IN_FLIGHT * len(replicas.stacks)
