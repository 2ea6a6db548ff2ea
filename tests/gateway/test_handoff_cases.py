"""The handoff state machine and the claim race, on SQLite and on PostgreSQL.

Each database is migrated with Alembic, exactly as `make run` does, so the constraints under test
(the conditional UPDATE of a claim, one open case per conversation) are the real ones.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.console.auth import create_counsellor
from bot.handoff import cases, queue
from bot.store.conversations import forget, get_or_create
from bot.store.db import make_engine, make_sessionmaker
from bot.store.handoff_models import Case, Transition
from tests.gateway.conftest import migrate, postgres_database, require_production

SUMMARY = {"language": "th", "role": "child", "topics": ["sextortion"]}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('handoff') / 'cases.db'}"
        migrate(url)
        yield url
        return
    require_production()
    with postgres_database("handoff") as url:
        migrate(url)
        yield url


@pytest.fixture
def db(database_url):
    """(sessionmaker, run): `run` drives a coroutine on one event loop for the whole test."""
    loop = asyncio.new_event_loop()
    engine = make_engine(database_url)
    yield make_sessionmaker(engine), loop.run_until_complete
    loop.run_until_complete(engine.dispose())
    loop.close()


async def new_conversation(sessions) -> int:
    async with sessions() as session:
        conversation = await get_or_create(session, uuid.uuid4().hex, "webchat")
        await session.commit()
        return conversation.id


async def new_counsellor(sessions, role: str = "counsellor") -> int:
    async with sessions() as session:
        name = f"c{uuid.uuid4().hex[:8]}"
        counsellor = await create_counsellor(session, name, name, "a long enough password", role)
        await session.commit()
        return counsellor.id


async def started(sessions, urgent: bool) -> int:
    conversation_id = await new_conversation(sessions)
    async with sessions() as session:
        from bot.store.models import Conversation

        conversation = await session.get(Conversation, conversation_id)
        case = await cases.start(session, conversation, SUMMARY, urgent)
        await session.commit()
        return case.id


async def step(sessions, case_id: int, to: str, actor: str = "test", **kwargs) -> None:
    async with sessions() as session:
        case = await session.get(Case, case_id)
        await cases.move(session, case, to, actor, **kwargs)
        await session.commit()


async def mode_and_history(sessions, case_id: int) -> tuple[str, list[tuple[str, str, str]]]:
    from bot.store.models import Conversation

    async with sessions() as session:
        case = await session.get(Case, case_id)
        conversation = await session.get(Conversation, case.conversation_id)
        rows = await session.scalars(
            select(Transition).where(Transition.case_id == case_id).order_by(Transition.id)
        )
        return conversation.mode, [(t.from_state, t.to_state, t.actor) for t in rows]


def test_the_whole_path_is_recorded_and_mirrored_in_the_mode(db):
    sessions, run = db
    counsellor = run(new_counsellor(sessions))
    case_id = run(started(sessions, urgent=False))
    assert run(mode_and_history(sessions, case_id)) == ("offered", [("bot", "offered", "child")])
    run(step(sessions, case_id, "queued", "child"))
    assert run(mode_and_history(sessions, case_id))[0] == "queued"
    async def claim() -> bool:
        async with sessions() as session:
            won = await cases.claim(session, await session.get(Case, case_id), counsellor)
            await session.commit()
            return won
    assert run(claim())
    assert run(mode_and_history(sessions, case_id))[0] == "assigned"
    run(step(sessions, case_id, "closed", f"counsellor:{counsellor}"))
    mode, history = run(mode_and_history(sessions, case_id))
    assert mode == "bot"
    assert history == [
        ("bot", "offered", "child"),
        ("offered", "queued", "child"),
        ("queued", "assigned", f"counsellor:{counsellor}"),
        ("assigned", "closed", f"counsellor:{counsellor}"),
        ("closed", "bot", f"counsellor:{counsellor}"),
    ]


def test_urgent_cases_are_queued_at_once_and_go_first(db):
    sessions, run = db
    calm = run(started(sessions, urgent=False))
    run(step(sessions, calm, "queued", "child"))
    urgent = run(started(sessions, urgent=True))
    assert run(mode_and_history(sessions, urgent)) == ("queued", [("bot", "queued", "system")])

    async def line() -> list[int]:
        async with sessions() as session:
            return [c.id for c in await queue.ordered(session)]

    ids = run(line())
    assert ids.index(urgent) < ids.index(calm)


def test_steps_the_machine_does_not_have_are_refused(db):
    sessions, run = db
    case_id = run(started(sessions, urgent=False))
    with pytest.raises(cases.TransitionRefused):
        run(step(sessions, case_id, "assigned"))  # offered → assigned skips the queue
    run(step(sessions, case_id, "closed", "child"))
    with pytest.raises(cases.TransitionRefused):
        run(step(sessions, case_id, "queued"))  # a closed case stays closed


def test_a_conversation_has_at_most_one_open_case(db):
    sessions, run = db
    case_id = run(started(sessions, urgent=False))

    async def second_open_case() -> None:
        async with sessions() as session:
            case = await session.get(Case, case_id)
            session.add(Case(conversation_id=case.conversation_id, state="queued", summary="{}"))
            await session.commit()

    with pytest.raises(IntegrityError):
        run(second_open_case())


def test_two_counsellors_claiming_at_once_fifty_times_exactly_one_wins(db):
    sessions, run = db
    first, second = run(new_counsellor(sessions)), run(new_counsellor(sessions))

    async def claim(case_id: int, counsellor: int) -> bool:
        async with sessions() as session:
            case = await session.get(Case, case_id)
            won = await cases.claim(session, case, counsellor)
            await session.commit()
            return won

    async def race() -> list[tuple[bool, bool, int | None]]:
        results = []
        for _ in range(50):
            case_id = await started(sessions, urgent=True)
            a, b = await asyncio.gather(claim(case_id, first), claim(case_id, second))
            async with sessions() as session:
                owner = (await session.get(Case, case_id)).counsellor_id
            results.append((a, b, owner))
        return results

    results = run(race())
    assert all(a != b for a, b, _ in results), results
    assert all(owner == (first if a else second) for a, _, owner in results)


def test_forgetting_a_user_deletes_their_cases_and_history(db):
    sessions, run = db
    case_id = run(started(sessions, urgent=True))

    async def forget_owner() -> tuple[int, int]:
        from bot.store.models import Conversation

        async with sessions() as session:
            case = await session.get(Case, case_id)
            conversation = await session.get(Conversation, case.conversation_id)
            await forget(session, conversation.user_key)
            await session.commit()
        async with sessions() as session:
            left = await session.scalar(select(func.count()).where(Case.id == case_id))
            history = await session.scalar(
                select(func.count()).where(Transition.case_id == case_id)
            )
            return left, history

    assert run(forget_owner()) == (0, 0)


def test_a_claim_that_reads_the_case_after_another_won_loses(db):
    sessions, run = db
    first, second = run(new_counsellor(sessions)), run(new_counsellor(sessions))
    case_id = run(started(sessions, urgent=True))

    async def claim(counsellor: int) -> bool:
        async with sessions() as session:
            won = await cases.claim(session, await session.get(Case, case_id), counsellor)
            await session.commit()
            return won

    assert run(claim(first))
    assert not run(claim(second))  # it sees "assigned": losing, not a transfer

    async def owner() -> int | None:
        async with sessions() as session:
            return (await session.get(Case, case_id)).counsellor_id

    assert run(owner()) == first
