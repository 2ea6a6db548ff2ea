"""Rasa's lock on a conversation (scripts/ticket_lock.py): a turn behind the ticket of a server that
died is served once that ticket expires, and turns of one conversation still go one at a time, in
the order they came. On both lock stores Rasa runs with: in memory, and Redis (servers share it)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from rasa.core.lock import TicketLock
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore

from scripts import ticket_lock

LIFETIME_S = 0.5
LOOK_EVERY_S = 0.05  # how often a waiting turn looks again (Rasa's default: 1 s)
REDIS_DB = 8  # the scale test uses 7


@pytest.fixture(autouse=True)
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TicketLock, "is_locked", TicketLock.is_locked)  # restored after
    ticket_lock.install()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[LockStore]:
    if request.param == "memory":
        yield InMemoryLockStore()
        return
    redis_store = RedisLockStore(host="127.0.0.1", port=6379, db=REDIS_DB)
    yield redis_store
    redis_store.red.flushdb()


async def _turn(store: LockStore, conversation: str, log: list[str], name: str) -> float:
    """Takes the lock as Rasa's agent does, holds it briefly; returns when it got it."""
    async with store.lock(conversation, LIFETIME_S, LOOK_EVERY_S):
        got = time.monotonic()
        log.append(f"{name} in")
        await asyncio.sleep(0.1)
        log.append(f"{name} out")
    return got


def test_a_turn_behind_a_dead_servers_ticket_is_served_once_it_expires(store: LockStore) -> None:
    """The dead server's ticket and the waiting one are taken together, so both have expired at
    the next look; Rasa's own rule then never serves the waiting one (it waits for ever)."""
    conversation = uuid.uuid4().hex
    store.issue_ticket(conversation, LIFETIME_S)  # taken by a server, which then died
    started = time.monotonic()
    got = asyncio.run(asyncio.wait_for(_turn(store, conversation, [], "retried"), 5))
    assert LIFETIME_S * 0.9 <= got - started <= LIFETIME_S + 1.0


def test_turns_of_one_conversation_still_go_one_at_a_time_in_order(store: LockStore) -> None:
    conversation = uuid.uuid4().hex
    log: list[str] = []

    async def three() -> None:
        turns = []
        for name in ("first", "second", "third"):
            turns.append(asyncio.ensure_future(_turn(store, conversation, log, name)))
            await asyncio.sleep(0.01)  # taken in this order
        await asyncio.gather(*turns)

    asyncio.run(asyncio.wait_for(three(), 5))
    assert log == [f"{n} {way}" for n in ("first", "second", "third") for way in ("in", "out")]


def test_a_live_ticket_taken_earlier_keeps_the_lock() -> None:
    lock = TicketLock("c")
    earlier = lock.issue_ticket(60)
    later = lock.issue_ticket(60)
    assert (lock.is_locked(earlier), lock.is_locked(later)) == (False, True)
    lock.remove_ticket_for(earlier)
    assert not lock.is_locked(later)
