"""The production configuration, chosen by environment variables (README, Configuration).

DATABASE_URL (the gateway), TRACKER_STORE_URL (Rasa's tracker store, by default the same
PostgreSQL database), REDIS_URL (Rasa's lock store and the consoles' live updates across gateway
replicas); unset, everything is the embedded default: SQLite files and in-memory locks and events.
"""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bot.config import Settings
from bot.handoff.events import Events, channel_for
from bot.identity import user_key
from bot.store.db import sync_url
from scripts.stack import ENGINE_BIN, ROOT, rasa_endpoints, tracker_store_url, write_endpoints
from tests.gateway.conftest import (
    REDIS_SERVER,
    postgres_database,
    production_unavailable,
    require_production,
)

BASE = {"ACTION_PORT": "5055", "GATEWAY_PORT": "8000", "NLG_TOKEN": "nlg-token"}
POSTGRES_URL = "postgresql://rasa:s%24cret@db.internal:6543/assistant"


# -- Rasa's endpoints file, written by scripts/stack.py -----------------------------------------


def test_unset_means_the_embedded_default(tmp_path):
    env = {**BASE, "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}"}
    env["TRACKER_DB"] = str(tmp_path / "rasa_tracker.db")
    assert rasa_endpoints(env) == {
        "action_endpoint": {"url": "http://127.0.0.1:5055/webhook"},
        "nlg": {"url": "http://127.0.0.1:8000/nlg", "token": "nlg-token"},
        "tracker_store": {"type": "SQL", "dialect": "sqlite", "db": env["TRACKER_DB"]},
        "lock_store": {"type": "in_memory"},
    }
    assert rasa_endpoints({**BASE})["tracker_store"]["db"] == str(ROOT / "var" / "rasa_tracker.db")


def test_rasa_renders_through_nlg_url_when_set():
    """Replicas: Rasa reaches /nlg through the balancer, not only its own gateway (tests/scale)."""
    balancer = {**BASE, "NLG_URL": " http://127.0.0.1:9000/nlg "}
    assert rasa_endpoints(balancer)["nlg"] == {
        "url": "http://127.0.0.1:9000/nlg",
        "token": "nlg-token",
    }
    assert rasa_endpoints({**BASE, "NLG_URL": ""})["nlg"]["url"] == "http://127.0.0.1:8000/nlg"


def test_postgresql_and_redis_when_the_variables_are_set():
    env = {**BASE, "DATABASE_URL": POSTGRES_URL, "REDIS_URL": "redis://:pw@cache:6380/4"}
    endpoints = rasa_endpoints(env)
    assert endpoints["tracker_store"] == {
        "type": "SQL",
        "dialect": "postgresql",
        "url": "db.internal",
        "port": 6543,
        "db": "assistant",
        "username": "rasa",
        "password": "s$cret",
    }
    assert endpoints["lock_store"] == {
        "type": "redis",
        "url": "cache",
        "port": 6380,
        "db": 4,
        "password": "pw",
    }
    tls = rasa_endpoints({**BASE, "REDIS_URL": "rediss://cache"})["lock_store"]
    assert tls == {"type": "redis", "url": "cache", "port": 6379, "db": 0, "use_ssl": True}


def test_tracker_store_url_wins_over_the_gateway_database(tmp_path):
    env = {
        **BASE,
        "DATABASE_URL": POSTGRES_URL,
        "TRACKER_STORE_URL": "postgresql+psycopg://rasa@tracker.internal/rasa?sslmode=require",
    }
    assert rasa_endpoints(env)["tracker_store"] == {
        "type": "SQL",
        "dialect": "postgresql",  # Rasa's own SQLAlchemy 1.4 connects with psycopg2
        "url": "tracker.internal",
        "db": "rasa",
        "username": "rasa",
        "query": {"sslmode": "require"},
    }
    sqlite = {**BASE, "DATABASE_URL": POSTGRES_URL, "TRACKER_STORE_URL": f"sqlite:///{tmp_path}/t"}
    assert rasa_endpoints(sqlite)["tracker_store"]["dialect"] == "sqlite"


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"DATABASE_URL": "sqlite:////srv/gateway.db", "TRACKER_DB": "/srv/rasa.db"},
        {"DATABASE_URL": POSTGRES_URL},
        {"DATABASE_URL": POSTGRES_URL, "TRACKER_STORE_URL": "postgresql://other/rasa"},
        {"TRACKER_STORE_URL": "sqlite:////srv/elsewhere.db"},
    ],
)
def test_the_gateway_purges_the_tracker_store_rasa_writes(monkeypatch, variables):
    for name in ("DATABASE_URL", "TRACKER_STORE_URL", "TRACKER_DB", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env().tracker_store_url == tracker_store_url(variables)


def test_the_file_is_private_and_keeps_dollars_literal(tmp_path):
    path = tmp_path / "var" / "endpoints.yml"
    env = {**BASE, "NLG_TOKEN": "a${HOME}b", "DATABASE_URL": POSTGRES_URL}
    write_endpoints(path, env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert '"a${HOME}b"' in path.read_text()  # quoted: Rasa expands ${...} in plain scalars only


def test_rasa_reads_the_generated_file_into_postgresql_and_redis(tmp_path):
    """Rasa 3.6 itself (the engine environment) builds its stores from the file."""
    require_production()
    with postgres_database("endpoints") as database_url:
        path = tmp_path / "endpoints.yml"
        write_endpoints(path, {**BASE, "DATABASE_URL": database_url, "REDIS_URL": REDIS_SERVER})
        program = f"""
import json
from rasa.core.lock_store import LockStore
from rasa.core.tracker_store import TrackerStore
from rasa.core.utils import read_endpoints_from_path
endpoints = read_endpoints_from_path({str(path)!r})
tracker = TrackerStore.create(endpoints.tracker_store)
locks = LockStore.create(endpoints.lock_store)
print(json.dumps([type(tracker).__name__, tracker.engine.dialect.name, type(locks).__name__,
                  locks.red.ping(), endpoints.nlg.token]))
"""
        done = subprocess.run(
            [str(ENGINE_BIN / "python"), "-c", program],
            capture_output=True,
            text=True,
            timeout=120,
            env={"RASA_TELEMETRY_ENABLED": "false", "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        assert answer == ["SQLTrackerStore", "postgresql", "RedisLockStore", True, "nlg-token"]
        tables = create_engine(sync_url(database_url), poolclass=NullPool)
        with tables.connect() as connection:
            assert connection.execute(text("select count(*) from events")).scalar() == 0
        tables.dispose()


def test_the_running_stack_keeps_rasa_s_words_where_the_gateway_erases_them(stack, chat):
    """Both `stack` variants: Rasa's events land in the tracker store the gateway purges."""
    env = stack.env()
    postgresql = env["DATABASE_URL"].startswith("postgresql")
    written = stack.endpoints_file.read_text()
    assert ("dialect: postgresql" in written) == postgresql
    assert ("type: redis" in written) == postgresql
    assert ("type: in_memory" in written) == (not postgresql)
    if postgresql:
        assert env["TRACKER_STORE_URL"] == env["DATABASE_URL"]

    user = f"u-{uuid.uuid4().hex[:8]}"
    chat(user, "hello")
    key = user_key("test-secret", "webchat", user)  # USER_ID_SECRET of the `stack` fixture
    tracker = create_engine(sync_url(env["TRACKER_STORE_URL"]), poolclass=NullPool)
    try:
        with tracker.connect() as connection:
            count = connection.execute(
                text("select count(*) from events where sender_id = :key"), {"key": key}
            ).scalar()
    finally:
        tracker.dispose()
    assert count > 0


# -- console live updates across gateway replicas -----------------------------------------------


def test_without_redis_events_stay_in_the_process():
    async def scenario() -> None:
        one, other = Events(), Events()
        async with one.running(), other.running():
            with one.subscription() as mine, other.subscription() as theirs:
                one.changed(3)
                assert mine.get_nowait() == {"type": "changed", "case": 3}
                await asyncio.sleep(0.1)
                assert theirs.empty()

    asyncio.run(scenario())


def test_events_fan_out_across_replicas_through_redis():
    require_production()
    url = f"{REDIS_SERVER}/2"
    channel = f"test-console-events-{uuid.uuid4().hex}"  # not another test run's consoles

    async def scenario() -> None:
        a, b = Events(url, channel=channel), Events(url, channel=channel)
        async with a.running(), b.running():
            with a.subscription() as on_a, b.subscription() as on_b:
                a.changed(7)
                a.publish({"type": "reminder", "case": 7, "counsellor": 2})
                assert await asyncio.wait_for(on_b.get(), 5) == {"type": "changed", "case": 7}
                assert await asyncio.wait_for(on_b.get(), 5) == {
                    "type": "reminder",
                    "case": 7,
                    "counsellor": 2,
                }
                b.changed(8)
                assert on_b.get_nowait() == {"type": "changed", "case": 8}
                # A's own subscriber: its own events at once, B's through Redis, nothing twice
                seen = [on_a.get_nowait(), on_a.get_nowait()]
                seen.append(await asyncio.wait_for(on_a.get(), 5))
                assert [e["case"] for e in seen] == [7, 7, 8]
                await asyncio.sleep(0.3)
                assert on_a.empty() and on_b.empty()

    asyncio.run(scenario())


def test_replicas_of_other_deployments_are_not_heard():
    assert channel_for("redis://cache:6379/3") == "console-events:3"
    assert channel_for("redis://cache") == channel_for("redis://cache:6379/0")
    assert channel_for("redis://cache/1") != channel_for("redis://cache/2")


def test_a_gateway_starts_even_when_redis_is_away():
    async def scenario() -> None:
        events = Events("redis://127.0.0.1:1/0")
        async with events.running(subscribe_timeout_s=0.5):
            with events.subscription() as queue:
                events.changed(1)
                assert queue.get_nowait() == {"type": "changed", "case": 1}

    asyncio.run(scenario())


# -- make test: PostgreSQL is required under CI --------------------------------------------------


def test_without_postgresql_ci_fails_and_a_laptop_skips(monkeypatch):
    nowhere = {"admin_url": "postgresql://postgres@127.0.0.1:1/test"}
    assert production_unavailable(**nowhere)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_production(**nowhere)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_production(**nowhere)
