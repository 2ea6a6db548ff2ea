"""The durable inbox: every accepted event is kept until it is answered, and each user's events are
answered in order, by whichever replica gets to them.

A channel acknowledges an event (LINE's and Telegram's 200, the web chat's POST) only once its row
is written (bot/store/inbound.py). A worker then claims the user's oldest unfinished row, answers
it, and finishes it and claims the next in one step; the row is finished only once the answer was
sent or sits in the push outbox (bot/handoff/relay.py). A claim is a lease, renewed while the
worker lives: rows of a replica that died (SIGKILL, out of memory, a deploy) are claimed again by
any replica's sweep once the lease runs out, and on SQLite (one process) at once at start.

A row whose answering fails is tried again after a short wait; after MAX_ATTEMPTS it gets the
fail-safe answer (1387, 1300, 191) and is finished: never silence, never an endless loop.

Past capacity a row's answer may come in two parts (bot/holding.py): the holding line, handed
early to the request waiting for the row (here, or through the row for another replica's), and
the real answer, which the channel delivers its later way before the row is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from bot.address import AddressBook
from bot.background import background
from bot.store import inbound
from bot.store.models import utcnow
from bot.store.steps import Steps

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# How long a claim lasts without renewal, and how often a worker renews its own and looks for
# rows nobody holds. A replica that died holds its rows for at most LEASE_S.
LEASE_S = 20.0
SWEEP_EVERY_S = 2.0
RETRY_AFTER_S = 1.0  # times the attempts so far: a failure is tried again after 1 s, then 2 s
# Answering the fail-safe itself failed this often: the row is finished without an answer.
GIVE_UP_AFTER = MAX_ATTEMPTS + 2
# How long a request whose row was finished by this process waits for the answer handed over.
HAND_OVER_S = 5.0


@dataclass(frozen=True)
class Event:
    """One accepted event, reduced to what the gateway needs.

    `kind`: text (text and button presses), sticker, media, follow, unfollow, group, or ignore.
    `reply` carries what the adapter needs to answer (a reply token, a chat id, message ids).
    `pressed`: the text is the payload of a button (or menu area) the user pressed, not typed.
    """

    event_id: str
    user_id: str
    kind: str
    text: str = ""
    reply: dict[str, Any] = field(default_factory=dict)
    pressed: bool = False


# Hands an answer to the request waiting for the event before the event is finished.
Early = Callable[[dict[str, Any]], Awaitable[None]]


class Answers(Protocol):
    """What a channel does with one of its events: answer it, or give the fail-safe answer.
    The return value is what a web chat request waiting for the event answers with, unless
    `early` gave it one already (the holding line)."""

    async def handle(self, event: Event, user: str, early: Early) -> dict[str, Any] | None: ...

    async def fail_safe(self, event: Event, user: str) -> dict[str, Any] | None: ...


class Inbox:
    def __init__(
        self,
        steps: Steps,
        addresses: AddressBook,
        lease_s: float = LEASE_S,
        sweep_every_s: float = SWEEP_EVERY_S,
    ) -> None:
        self._store = inbound.InboundStore(steps)
        self._seal = addresses
        self._lease_s = lease_s
        self._sweep_every_s = sweep_every_s
        self._channels: dict[str, Answers] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._working: set[str] = set()  # users with a worker in this process
        self._again: set[str] = set()  # ... who were sent something while it worked
        self._claims: set[str] = set()  # claims being answered here: their leases are renewed
        self._waiting: dict[int, asyncio.Future[dict[str, Any] | None]] = {}

    def register(self, channel: str, answers: Answers) -> None:
        self._channels[channel] = answers

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Renews this worker's leases and sweeps for rows nobody holds, for the app's life; at
        shutdown, what is being answered is finished first (the channels must still be open)."""
        if self._store.sqlite:
            await self._store.release_all()
        try:
            async with background(self._keep()):
                yield
        finally:
            await self.drain()

    # -- in ------------------------------------------------------------------------------------

    async def accept(self, channel: str, events: list[tuple[str, Event]]) -> list[int]:
        """Writes (user key, event) rows and starts answering them; returns the new rows' ids.
        When this returns, the events are kept: the platform may be told so. A user with new rows
        whom no worker of this process answers has their oldest row claimed in the same step."""
        rows = [(e.event_id, user, self._seal.seal(json.dumps(asdict(e)))) for user, e in events]
        users = list(dict.fromkeys(user for user, _ in events))
        idle = [user for user in users if user not in self._working]
        self._working.update(idle)  # theirs are claimed below: no other worker may start
        try:
            written, claimed = await self._store.write(channel, rows, idle, self._lease_s)
        except BaseException:
            self._working.difference_update(idle)
            raise
        for user in idle:
            row = claimed.get(user)
            if row is not None or user in self._again:
                self._launch(user, row)
            else:  # nothing new of theirs, or another worker holds it
                self._working.discard(user)
        for user in dict.fromkeys(user for _, user in written):
            if user not in idle:
                self._start(user)
        return [row_id for row_id, _ in written]

    async def answer(
        self, channel: str, user: str, event: Event, wait_s: float
    ) -> dict[str, Any] | None:
        """Accepts one event and waits for its answer (the web chat's request); None when it
        was not answered within `wait_s`, or was erased before an answer was kept."""
        written = await self.accept(channel, [(user, event)])
        if not written:
            return None
        row_id = written[0]
        answered = asyncio.get_running_loop().create_future()
        self._waiting[row_id] = answered
        deadline = asyncio.get_running_loop().time() + wait_s
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return None
                with contextlib.suppress(asyncio.TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(answered), min(left, 0.5))
                if user in self._working:
                    continue  # this process is at it: it will hand the answer over
                # Another replica holds this user's rows, or the row waits out a failure.
                outcome = await self._store.outcome(row_id)
                if outcome is None:
                    return None
                if outcome.answer:  # the answer, or the holding line handed over early
                    return json.loads(outcome.answer)
                if outcome.finished:
                    # Kept nowhere: a worker of this process answered it (this request waits
                    # for it) and hands the answer over as soon as its finish is committed.
                    with contextlib.suppress(asyncio.TimeoutError):
                        return await asyncio.wait_for(asyncio.shield(answered), HAND_OVER_S)
                    return None
                self._start(user)
        finally:
            self._waiting.pop(row_id, None)

    async def drain(self) -> None:
        """Waits until every worker in this process is done (shutdown and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def sweep(self) -> None:
        """Starts a worker for every user with rows nobody holds."""
        for user in await self._store.waiting():
            self._start(user)

    # -- the worker ----------------------------------------------------------------------------

    def _start(self, user: str) -> None:
        if user in self._working:
            self._again.add(user)
            return
        self._working.add(user)
        self._launch(user, None)

    def _launch(self, user: str, row: inbound.Claimed | None) -> None:
        """A worker for `user`, already marked working; `row`: theirs, claimed already."""
        task = asyncio.get_running_loop().create_task(self._work(user, row))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _work(self, user: str, row: inbound.Claimed | None) -> None:
        """Answers this user's rows in order for as long as there are any to claim."""
        try:
            while True:
                self._again.discard(user)
                if row is None:
                    row = await self._store.claim(user, self._lease_s)
                while row is not None:
                    row = await self._answer(row)
                if user not in self._again:
                    return
        except Exception:  # the database is away: the sweep tries again
            log.exception("the inbox could not claim or finish an event")
        finally:
            self._working.discard(user)
            self._again.discard(user)

    async def _answer(self, row: inbound.Claimed) -> inbound.Claimed | None:
        """Answers one row; returns the user's next row, claimed, when there is one."""
        self._claims.add(row.claim)
        try:
            answer = await self._answered(row)
        except Exception:
            log.exception("answering a %s event failed (attempt %d)", row.channel, row.attempts)
            retry_at = utcnow() + timedelta(seconds=RETRY_AFTER_S * row.attempts)
            await self._store.release(row, retry_at)
            return None
        finally:
            self._claims.discard(row.claim)
        waiting = self._waiting.get(row.id)
        kept = None if waiting is not None or answer is None else json.dumps(answer)
        following = await self._store.finish(row, kept, self._lease_s)
        if waiting is not None and not waiting.done():
            waiting.set_result(answer)
        return following

    async def _answered(self, row: inbound.Claimed) -> dict[str, Any] | None:
        event = self._event(row)
        channel = self._channels.get(row.channel)
        if event is None or channel is None:
            log.error("a %s event could not be read; it is dropped", row.channel)
            return None
        if row.attempts > GIVE_UP_AFTER:
            log.error("a %s event could not be answered, not even by the fail-safe", row.channel)
            return None
        if row.attempts > MAX_ATTEMPTS:
            failed = row.attempts - 1
            log.warning("a %s event failed %d times: the fail-safe answers", row.channel, failed)
            return await channel.fail_safe(event, row.user_key)
        return await channel.handle(event, row.user_key, functools.partial(self._early, row))

    async def _early(self, row: inbound.Claimed, answer: dict[str, Any]) -> None:
        """The request waiting for this row takes `answer` now: here at once, or through the row
        when it waits in another replica (bot/holding.py: the holding line)."""
        waiting = self._waiting.get(row.id)
        if waiting is None:
            await self._store.hold(row, json.dumps(answer))
        elif not waiting.done():
            waiting.set_result(answer)

    def _event(self, row: inbound.Claimed) -> Event | None:
        opened = self._seal.open(row.payload)
        if opened is None:
            return None
        try:
            return Event(**json.loads(opened))
        except (ValueError, TypeError):
            return None

    async def _keep(self) -> None:
        while True:
            try:
                await self._store.renew(list(self._claims), self._lease_s)
                await self.sweep()
            except Exception:
                log.exception("the inbox's sweep failed")
            await asyncio.sleep(self._sweep_every_s)
