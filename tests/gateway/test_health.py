"""What the gateway knows of each part (bot/health.py) and the circuit breaker it opens in front of
Rasa (bot/rasa_client.py), on local stand-ins: a part nothing listens on is down at once, a hung
one after two failed probes, and while either Rasa or the action server is down a turn gets the
fail-safe at once and never reaches Rasa; found up again, the breaker closes by itself. Then the
gateway itself with nothing behind it: /healthz, and the fail-safe's "talk to a person"."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import create_app
from bot.config import Settings
from bot.health import DOWN, UP, Health, Refused, http_probe
from bot.rasa_client import RasaClient, RasaUnavailable
from bot.store.handoff_models import Case
from bot.store.models import Message
from scripts.stack import free_port
from tests.gateway.conftest import ROOT, migrate
from tests.gateway.test_handoff_flow import said
from tests.gateway.test_rasa_client import SlowRasa


@contextlib.asynccontextmanager
async def client_of(
    handler: Callable[[web.Request], Awaitable[web.Response]], health: Health
) -> AsyncIterator[RasaClient]:
    """A RasaClient with its breaker, talking to `handler` served on a local port."""
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url(""))
        async with RasaClient((url,), 1.0, 8, health) as client:
            yield client


class Switch:
    """A probe whose answer the test decides."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    async def __call__(self) -> None:
        if self.error is not None:
            raise self.error


def test_nothing_listening_is_down_at_once_a_slow_part_after_two_failures() -> None:
    asyncio.run(_nothing_listening_is_down_at_once_a_slow_part_after_two_failures())


async def _nothing_listening_is_down_at_once_a_slow_part_after_two_failures() -> None:
    rasa, actions = Switch(), Switch()
    health = Health({"rasa": rasa, "actions": actions}, every_s=60, timeout_s=0.2)
    assert not health.ready  # nothing known yet
    await health.probe_all()
    assert health.ready and health.down() is None
    assert health.report()["degraded_since"] is None

    rasa.error = Refused("ConnectError")
    await health.probe("rasa")
    assert health.down() == "rasa" and not health.ready
    assert health.report()["parts"]["rasa"]["problem"] == "ConnectError"

    rasa.error = None
    await health.probe("rasa")
    assert health.ready

    actions.error = asyncio.TimeoutError()  # answers too slowly: hung, or only busy
    await health.probe("actions")
    assert health.parts["actions"].state == UP  # one slow answer is not an outage
    await health.probe("actions")
    assert health.down() == "actions"
    since = health.report()["degraded_since"]
    assert since == health.report()["parts"]["actions"]["since"]


def test_a_probe_that_never_returns_counts_as_a_failure() -> None:
    asyncio.run(_a_probe_that_never_returns_counts_as_a_failure())


async def _a_probe_that_never_returns_counts_as_a_failure() -> None:
    async def forever() -> None:
        await asyncio.sleep(3600)

    health = Health({"rasa": forever}, every_s=60, timeout_s=0.1)
    started = time.monotonic()
    await health.probe("rasa")
    await health.probe("rasa")
    assert health.parts["rasa"].state == DOWN
    assert time.monotonic() - started < 1


def test_a_port_nothing_listens_on_is_refused_and_a_stopped_server_is_slow() -> None:
    asyncio.run(_a_port_nothing_listens_on_is_refused_and_a_stopped_server_is_slow())


async def _a_port_nothing_listens_on_is_refused_and_a_stopped_server_is_slow() -> None:
    with socket.socket() as hung:  # listens, never answers: what a SIGSTOPped server looks like
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        async with httpx.AsyncClient() as client:
            health = Health(
                {
                    "rasa": http_probe(client, f"http://127.0.0.1:{free_port()}/"),
                    "actions": http_probe(client, f"http://127.0.0.1:{hung.getsockname()[1]}/"),
                },
                timeout_s=0.3,
            )
            await health.probe_all()
            assert health.parts["rasa"].state == DOWN
            assert health.parts["actions"].state != DOWN
            await health.probe_all()
            assert health.parts["actions"].state == DOWN


def test_while_a_part_is_down_a_turn_gets_the_failsafe_at_once_and_never_reaches_rasa() -> None:
    asyncio.run(_while_a_part_is_down_a_turn_gets_the_failsafe_at_once())


async def _while_a_part_is_down_a_turn_gets_the_failsafe_at_once() -> None:
    rasa = SlowRasa(0.01)
    actions = Switch()
    health = Health({"actions": actions}, every_s=60)
    await health.probe_all()
    async with client_of(rasa.webhook, health) as client:
        assert (await client.send("a", "before", "webchat", {}))[0].text == "re: before"

        actions.error = Refused("ConnectError")
        await health.probe("actions")
        started = time.monotonic()
        for number in range(20):
            with pytest.raises(RasaUnavailable, match="actions is down"):
                await client.send("a", f"during {number}", "webchat", {})
        assert time.monotonic() - started < 0.5
        assert rasa.received == ["before"]
        assert health.report()["failsafe_answers"] == 20

        actions.error = None
        await health.probe("actions")  # the next round of probes: closed again, by itself
        assert (await client.send("a", "after", "webchat", {}))[0].text == "re: after"
        assert health.report()["failsafe_answers"] == 0


def test_a_failed_turn_wakes_the_prober_at_once() -> None:
    asyncio.run(_a_failed_turn_wakes_the_prober_at_once())


async def _a_failed_turn_wakes_the_prober_at_once() -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    probes = 0

    async def counted() -> None:
        nonlocal probes
        probes += 1

    health = Health({"rasa": counted}, every_s=60)
    async with health.running(), client_of(broken, health) as client:
        assert probes == 1  # the first round, before the app serves
        with pytest.raises(RasaUnavailable):
            await client.send("a", "hi", "webchat", {})
        for _ in range(50):
            if probes == 2:
                break
            await asyncio.sleep(0.02)
    assert probes == 2  # not in 60 s: now


def test_slow_is_hung_only_after_hung_after_s_and_not_while_turns_are_answered() -> None:
    asyncio.run(_slow_is_hung_only_after_hung_after_s())


async def _slow_is_hung_only_after_hung_after_s() -> None:
    rasa = Switch()
    health = Health({"rasa": rasa}, every_s=60, hung_after_s=0.5)
    await health.probe_all()
    rasa.error = asyncio.TimeoutError()  # busy: its first inference, or a crowd
    for _ in range(3):
        await health.probe("rasa")
    assert health.parts["rasa"].state == UP  # three failures, but all within 0.5 s
    await asyncio.sleep(0.5)
    health.turn_answered()  # a turn came back meanwhile: slow, not hung
    await health.probe("rasa")
    await health.probe("rasa")
    assert health.parts["rasa"].state == UP  # failing again, but only since the answer
    await asyncio.sleep(0.5)
    await health.probe("rasa")
    assert health.down() == "rasa"


# -- the gateway in-process, with nothing behind it ---------------------------------------------


def test_without_rasa_healthz_says_503_and_the_failsafe_person_button_queues_a_case(
    tmp_path, locales
) -> None:
    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate(database_url)
    settings = dataclasses.replace(
        Settings.from_env(),
        database_url=database_url,
        rasa_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: Rasa is down
        action_url=f"http://127.0.0.1:{free_port()}",
        redis_url="",
        user_id_secret="test-secret",
        locales_dir=ROOT / "locales",
        line_channel_secret="",
        telegram_bot_token="",
    )
    asyncio.run(_without_rasa(settings, locales))


async def _without_rasa(settings: Settings, locales) -> None:  # noqa: ANN001 (Locales)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as client,
    ):
        assert (await client.get("/livez")).status_code == 200
        health = await client.get("/healthz")
        assert health.status_code == 503
        parts = health.json()["parts"]
        assert {n: p["state"] for n, p in parts.items()} == {
            "gateway": "up",
            "rasa": "down",
            "actions": "down",
            "database": "up",
        }

        async def say(text: str) -> dict:
            response = await client.post("/webchat/messages", json={"user": "k", "text": text})
            assert response.status_code == 200
            return response.json()

        words = "someone online is threatening me"
        fallback = await say(words)
        assert [m["text"] for m in fallback["messages"]] == [
            locales.render("utter_fallback", "en", {}).text
        ]
        offered = await say("/talk_to_human")  # the fallback's button
        assert offered["mode"] == "offered"
        assert said(locales, "utter_handoff_summary", "en", offered["messages"][0]["text"])
        assert (await say("/handoff_agree"))["mode"] == "queued"
        async with app.state.sessions() as session:
            case = (await session.scalars(select(Case))).one()
        assert case.state == "queued" and not case.urgent
        summary = json.loads(case.summary)
        assert summary["language"] == "en" and words not in case.summary  # only what was shown
        async with app.state.sessions() as session:
            transcript = await session.scalars(
                select(Message.text).where(Message.conversation_id == case.conversation_id)
            )
            assert words in list(transcript)  # the counsellor who takes it reads them there
        assert (await client.get("/healthz")).json()["failsafe_answers"] == 2


def test_a_change_is_told_once_however_many_parts_are_probed_together(caplog) -> None:
    asyncio.run(_a_change_is_told_once(caplog))


async def _a_change_is_told_once(caplog: pytest.LogCaptureFixture) -> None:
    """Probes run together: the bot's change of state is one line in the log, not one a part."""
    switches = {name: Switch() for name in ("rasa", "rasa2", "actions", "database")}
    health = Health(dict(switches), every_s=60)

    def told() -> list[str]:
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("the bot")]
        caplog.clear()
        return said

    with caplog.at_level("WARNING", logger="bot.health"):
        await health.probe_all()
        assert told() == ["the bot gives real answers again"]
        switches["actions"].error = Refused("ConnectError")
        await health.probe_all()
        await health.probe_all()
        assert told() == ["the bot is degraded"]
        switches["actions"].error = None
        await health.probe_all()
        assert told() == ["the bot gives real answers again"]
