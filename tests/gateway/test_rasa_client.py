"""Admission to Rasa (bot/rasa_client.py): never more than RASA_MAX_IN_FLIGHT turns at Rasa, and a
turn that cannot start in time falls back at once instead of adding to Rasa's queue."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.health import Health, Refused
from bot.rasa_client import RasaClient, RasaUnavailable, home


class SlowRasa:
    """A local stand-in of Rasa's REST channel that takes `seconds` per turn and counts overlap."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at_once = 0
        self.most_at_once = 0
        self.received: list[str] = []

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body["message"])
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        await asyncio.sleep(self.seconds)
        self.at_once -= 1
        return web.json_response(
            [{"recipient_id": body["sender"], "text": f"re: {body['message']}"}]
        )


@contextlib.asynccontextmanager
async def client_of(
    handler: Callable[[web.Request], Awaitable[web.Response]], timeout_s: float, max_in_flight: int
) -> AsyncIterator[RasaClient]:
    """A RasaClient talking to `handler` served on a local port."""
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url(""))
        async with RasaClient((url,), timeout_s, max_in_flight=max_in_flight) as client:
            yield client


def test_no_more_than_the_limit_at_rasa_and_everyone_answered() -> None:
    asyncio.run(_no_more_than_the_limit_at_rasa_and_everyone_answered())


async def _no_more_than_the_limit_at_rasa_and_everyone_answered() -> None:
    rasa = SlowRasa(0.1)
    async with client_of(rasa.webhook, 4.0, 2) as client:
        answers = await asyncio.gather(
            *(client.send(f"u{i}", f"m{i}", "webchat", {}) for i in range(8))
        )
    assert [a[0].text for a in answers] == [f"re: m{i}" for i in range(8)]
    assert rasa.most_at_once == 2


def test_a_turn_that_cannot_start_in_half_the_timeout_falls_back_at_once() -> None:
    asyncio.run(_a_turn_that_cannot_start_in_half_the_timeout_falls_back_at_once())


async def _a_turn_that_cannot_start_in_half_the_timeout_falls_back_at_once() -> None:
    rasa = SlowRasa(1.0)
    async with client_of(rasa.webhook, 1.2, 1) as client:
        first = asyncio.create_task(client.send("a", "first", "webchat", {}))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(RasaUnavailable, match="busy"):
            await client.send("b", "second", "webchat", {})
        waited = time.monotonic() - started
        assert (await first)[0].text == "re: first"
    assert 0.5 <= waited < 0.9  # half of 1.2 s, not the whole timeout nor Rasa's second
    assert rasa.received == ["first"]  # the refused turn never reached Rasa


def test_a_slot_is_given_back_after_a_failure() -> None:
    asyncio.run(_a_slot_is_given_back_after_a_failure())


async def _a_slot_is_given_back_after_a_failure() -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    async with client_of(broken, 1.0, 1) as client:
        for _ in range(3):  # a lost slot would make the second one "busy"
            with pytest.raises(RasaUnavailable, match="ClientResponseError"):
                await client.send("a", "hi", "webchat", {})


def test_a_late_answer_is_the_fallback_not_a_wait() -> None:
    asyncio.run(_a_late_answer_is_the_fallback_not_a_wait())


async def _a_late_answer_is_the_fallback_not_a_wait() -> None:
    rasa = SlowRasa(2.0)
    async with client_of(rasa.webhook, 0.5, 1) as client:
        started = time.monotonic()
        with pytest.raises(RasaUnavailable, match="TimeoutError"):
            await client.send("a", "hi", "webchat", {})
    assert time.monotonic() - started < 1.5


def test_a_turn_sent_first_goes_ahead_of_every_waiting_turn() -> None:
    asyncio.run(_a_turn_sent_first_goes_ahead_of_every_waiting_turn())


async def _a_turn_sent_first_goes_ahead_of_every_waiting_turn() -> None:
    rasa = SlowRasa(0.2)
    async with client_of(rasa.webhook, 4.0, 1) as client:
        turns = [
            asyncio.create_task(client.send(f"u{i}", f"m{i}", "webchat", {})) for i in range(4)
        ]
        await asyncio.sleep(0.05)  # m0 at Rasa, m1 to m3 waiting
        urgent = asyncio.create_task(client.send("child", "urgent", "webchat", {}, first=True))
        await asyncio.gather(urgent, *turns)
    assert rasa.received == ["m0", "urgent", "m1", "m2", "m3"]


def test_a_patient_turn_keeps_its_place_past_the_timeout_and_is_sent_once() -> None:
    asyncio.run(_a_patient_turn_keeps_its_place_past_the_timeout_and_is_sent_once())


async def _a_patient_turn_keeps_its_place_past_the_timeout_and_is_sent_once() -> None:
    rasa = SlowRasa(0.6)
    async with client_of(rasa.webhook, 0.5, 1) as client:
        first = asyncio.create_task(client.send("a", "first", "webchat", {}, patience_s=5))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        answer = await client.send("b", "second", "webchat", {}, patience_s=5)
        waited = time.monotonic() - started
        assert (await first)[0].text == "re: first"
    assert answer[0].text == "re: second"
    assert 0.9 < waited < 2.0  # behind the first, longer than the 0.5 s timeout, not refused
    assert rasa.received == ["first", "second"]


def test_a_waiting_turn_learns_when_its_own_server_is_known_down() -> None:
    asyncio.run(_a_waiting_turn_learns_when_its_own_server_is_known_down())


async def _a_waiting_turn_learns_when_its_own_server_is_known_down() -> None:
    """RasaClient.down (bot/holding.py gives up a held turn when it returns): for a turn at a
    server once that server is known down, not for one at the other server."""
    refused = asyncio.Event()

    async def first_server() -> None:
        if refused.is_set():
            raise Refused("ConnectError")

    async def up() -> None:
        return None

    health = Health({"rasa": first_server, "rasa2": up, "actions": up})
    await health.probe_all()
    hung, fine = SlowRasa(30), SlowRasa(30)
    apps = [web.Application(), web.Application()]
    for app, rasa in zip(apps, (hung, fine), strict=True):
        app.router.add_post("/webhooks/rest/webhook", rasa.webhook)
    async with (
        TestServer(apps[0], host="127.0.0.1") as one,
        TestServer(apps[1], host="127.0.0.1") as two,
    ):
        urls = (str(one.make_url("")), str(two.make_url("")))
        async with RasaClient(urls, 1.0, 1, health) as client:
            at_one = next(f"a{n}" for n in range(100) if home(f"a{n}", 2) == 0)
            at_two = next(f"b{n}" for n in range(100) if home(f"b{n}", 2) == 1)
            turns = [
                asyncio.create_task(client.send(s, "hi", "webchat", {}, patience_s=30))
                for s in (at_one, at_two)
            ]
            downs = [asyncio.create_task(client.down(s)) for s in (at_one, at_two)]
            await asyncio.sleep(0.3)
            assert not any(d.done() for d in downs)  # both servers are up
            refused.set()
            await health.probe("rasa")
            await asyncio.sleep(0.05)
            assert downs[0].done() and not downs[1].done()
            for task in (*turns, downs[1]):
                task.cancel()
            await asyncio.gather(*turns, downs[1], return_exceptions=True)
    assert hung.received == ["hi"] and fine.received == ["hi"]  # each turn at its own server


@pytest.mark.parametrize("how", ["reset", "closed"])
def test_a_turn_whose_server_dropped_it_is_answered_by_the_next(how: str) -> None:
    asyncio.run(_a_turn_whose_server_dropped_it_is_answered_by_the_next(how))


async def _a_turn_whose_server_dropped_it_is_answered_by_the_next(how: str) -> None:
    """A server that dies mid-turn (SIGKILL) drops its connections: reset (RST) when the kernel
    still held unread bytes of them, else closed. Either way the turn goes to the next server."""
    dying_received: list[str] = []

    async def dying(request: web.Request) -> web.Response:
        dying_received.append((await request.json())["message"])
        sock = request.transport.get_extra_info("socket")
        if how == "reset":  # linger 0: close() sends RST, as for a process killed mid-read
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()
        await asyncio.sleep(30)
        raise AssertionError("the connection is gone")

    other = SlowRasa(0)
    apps = [web.Application(), web.Application()]
    apps[0].router.add_post("/webhooks/rest/webhook", dying)
    apps[1].router.add_post("/webhooks/rest/webhook", other.webhook)
    async with (
        TestServer(apps[0], host="127.0.0.1") as one,
        TestServer(apps[1], host="127.0.0.1") as two,
    ):
        urls = (str(one.make_url("")), str(two.make_url("")))
        async with RasaClient(urls, 2.0, 1) as client:
            sender = next(f"a{n}" for n in range(100) if home(f"a{n}", 2) == 0)
            answer = await client.send(sender, "hi", "webchat", {})
    assert [m.text for m in answer] == ["re: hi"]
    assert dying_received == ["hi"] and other.received == ["hi"]
