"""Two of everything: two gateways and two Rasa servers (each with its action server) sharing
PostgreSQL and Redis behind nginx, driven by 200 concurrent web-chat conversations of several
turns and a claim race across both gateways. Run by `make scale-test` (part of `make test`)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.stack import Stack, free_port  # noqa: E402
from tests.gateway.conftest import Console, migrate  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432/{name}"
REDIS = "redis://127.0.0.1:6379/7"
CONVERSATIONS = int(os.environ.get("SCALE_CONVERSATIONS", "200"))
CASES = 20
TURNS = {
    "th": ["สวัสดีค่ะ", "แจ้งเรื่องแบบนี้ได้ที่ไหนบ้าง", "ขอบคุณนะคะ"],
    "en": ["hello", "where can i report this", "thank you"],
}
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
    location / {{
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Who the child is, for the gateways' per-address limit (TRUSTED_PROXIES, bot/proxies.py).
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_read_timeout 120s;
      proxy_buffering off;
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


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, database):
    """(nginx URL, [gateway A URL, gateway B URL]) with everything running."""
    redis.Redis.from_url(REDIS).flushdb()
    shared = {
        "DATABASE_URL": database,
        "REDIS_URL": REDIS,
        "USER_ID_SECRET": "scale-secret",
        "RASA_TIMEOUT_S": "60",
        "RASA_SERVERS": "1",  # one Rasa server per replica
        # Each console races for every case: the race is tested here, not the load limit.
        "CONSOLE_MAX_OPEN_CHATS": str(CASES),
        # The per-address limit stays on: nginx passes each child's address on, and these
        # children, all on this machine, are not limited by address (bot/ratelimit.py).
    }
    stacks = [Stack.on_free_ports(tmp_path_factory.mktemp(f"replica{i}"), shared) for i in (1, 2)]
    nginx_dir = tmp_path_factory.mktemp("nginx")
    port = free_port()
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
        for stack in stacks:
            stack.start()
        yield f"http://127.0.0.1:{port}", [s.gateway_url for s in stacks]
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        for stack in stacks:
            stack.stop()


async def converse(client: httpx.AsyncClient, user: str, turns: list[str]) -> dict:
    """Sends the turns one after another; returns what each answer carried."""
    cursors, texts, fallbacks, errors = [], [], 0, []
    for words in turns:
        response = await client.post("/webchat/messages", json={"user": user, "text": words})
        if response.status_code != 200:
            errors.append(response.status_code)
            continue
        messages = response.json()["messages"]
        if not messages:
            errors.append("empty")
        fallbacks += sum(1 for m in messages if m["sender"] == "fallback")
        cursors += [m["cursor"] for m in messages]
        texts += [m["text"] for m in messages]
    later = await client.get("/webchat/messages", params={"user": user, "after": 0})
    stored = later.json()["messages"]
    return {
        "cursors": cursors,
        "texts": texts,
        "stored": [(m["cursor"], m["text"]) for m in stored],
        "fallbacks": fallbacks,
        "errors": errors,
    }


def test_200_conversations_through_two_gateways_lose_nothing(replicas):
    balancer, _ = replicas

    async def drive() -> list[dict]:
        limits = httpx.Limits(max_connections=CONVERSATIONS, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=balancer, timeout=180, limits=limits) as client:
            jobs = [
                converse(
                    client, f"scale-{i}-{uuid.uuid4().hex[:6]}", TURNS["th" if i % 2 else "en"]
                )
                for i in range(CONVERSATIONS)
            ]
            return await asyncio.gather(*jobs)

    started = time.monotonic()
    results = asyncio.run(drive())
    elapsed = time.monotonic() - started
    turns = CONVERSATIONS * len(TURNS["th"])
    lost = sum(len(r["errors"]) for r in results)
    misordered = sum(1 for r in results if r["cursors"] != sorted(r["cursors"]))
    duplicated = sum(1 for r in results if len(set(r["cursors"])) != len(r["cursors"]))
    # What the child was answered is exactly what is stored for them, in the same order.
    diverged = sum(
        1 for r in results if r["stored"] != list(zip(r["cursors"], r["texts"], strict=True))
    )
    fallbacks = sum(r["fallbacks"] for r in results)
    print(
        f"\nscale: {CONVERSATIONS} conversations, {turns} turns through 2 gateways in "
        f"{elapsed:.1f} s ({turns / elapsed:.1f} turns/s): lost {lost}, duplicated {duplicated}, "
        f"misordered {misordered}, diverged {diverged}, fallbacks {fallbacks}"
    )
    assert (lost, duplicated, misordered, diverged, fallbacks) == (0, 0, 0, 0, 0)


def test_one_claim_wins_across_gateways_and_consoles_hear_each_other(replicas, database):
    balancer, gateways = replicas
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
    assert all(w == [200, 409] for w in wins), outcomes
    assert heard and heard[0]["type"] == "changed"
