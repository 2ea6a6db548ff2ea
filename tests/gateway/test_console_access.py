"""Who may read what in the console (bot/console/policy.py), through the real app in-process on a
migrated SQLite database: a second counsellor gets nothing of a case a colleague holds, of one the
child has not sent, or of a closed one, from any endpoint, and cannot tell them from a missing
case; every transcript read is in the audit log; and the races found in review (the no-answer
timer, an erasure) answer 404/409 with a clear message, never 500."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import delete, select

from bot.app import create_app
from bot.config import Settings
from bot.console import policy
from bot.console.auth import create_counsellor
from bot.store.conversations import get_or_create
from bot.store.handoff_models import Case, Counsellor
from bot.store.models import Conversation, Message, utcnow
from tests.gateway.conftest import offline_settings

SECRET_WORDS = "คำของเด็ก-{}"  # what the child said: must reach nobody the policy refuses
ENDPOINTS = ("claim", "reply", "note", "transfer", "close")
BODIES = {
    "reply": {"text": "hello"},
    "note": {"text": "a note"},
    "transfer": {"to": None, "note": ""},
    "close": {"categories": ["violence.online_sexual_exploitation"]},
    "claim": {},
}


@pytest.fixture
def app_settings(tmp_path) -> Settings:
    return offline_settings(
        tmp_path,
        handoff_remind_after_s=60,
        handoff_return_after_s=300,
        handoff_check_every_s=3600,  # the test moves the timer itself
        console_secure_cookie=False,
    )


class Desk:
    """One counsellor's console, in-process."""

    def __init__(self, client: httpx.AsyncClient, counsellor: Counsellor) -> None:
        self.client, self.counsellor, self.csrf = client, counsellor, ""

    async def login(self, password: str) -> None:
        form = await self.client.get("/console/login")
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        answer = await self.client.post(
            "/console/login",
            data={"username": self.counsellor.username, "password": password, "csrf": csrf},
        )
        assert answer.status_code == 303, answer.text
        self.csrf = (await self.client.get("/console/api/me")).json()["csrf"]

    async def post(self, case_id: int, action: str, lang: str = "en") -> httpx.Response:
        return await self.client.post(
            f"/console/api/cases/{case_id}/{action}?lang={lang}",
            json=BODIES[action],
            headers={"X-CSRF-Token": self.csrf},
        )


@dataclasses.dataclass
class World:
    app: object
    holder: Desk
    other: Desk
    supervisor: Desk

    @property
    def sessions(self):  # noqa: ANN201 (a sessionmaker)
        return self.app.state.sessions

    @property
    def handoff(self):  # noqa: ANN201
        return self.app.state.handoff

    async def case(self, *, urgent: bool, words: str) -> int:
        """A child's conversation with `words` in it, and its case (queued if urgent, else
        offered: the child has not agreed to send it)."""
        async with self.sessions() as session:
            conversation = await get_or_create(session, uuid.uuid4().hex, "webchat")
            session.add(Message(conversation_id=conversation.id, sender="user", text=words))
            await session.commit()
        summary = {"language": "th", "role": "child", "topics": ["sextortion"], "urgent": urgent}
        await self.handoff.request(conversation.id, summary, "th")
        async with self.sessions() as session:
            case = await session.scalar(select(Case).where(Case.conversation_id == conversation.id))
            return case.id

    async def state(self, case_id: int) -> str | None:
        async with self.sessions() as session:
            case = await session.get(Case, case_id)
            return case.state if case else None

    async def audit(self) -> list[dict]:
        answer = await self.supervisor.client.get("/console/api/audit")
        assert answer.status_code == 200
        return answer.json()

    async def timer_returns(self, case_id: int) -> None:
        """The no-answer timer, as if the return period had passed: the case back to the queue."""
        later = utcnow() + timedelta(seconds=self.app.state.settings.handoff_return_after_s + 5)
        await self.handoff.check_waiting(now=later)
        assert await self.state(case_id) == "queued"

    async def erased(self, case_id: int) -> None:
        """The child erased their data: the conversation and its case are gone."""
        async with self.sessions() as session:
            case = await session.get(Case, case_id)
            await session.execute(
                delete(Conversation).where(Conversation.id == case.conversation_id)
            )
            await session.commit()
        assert await self.state(case_id) is None


@contextlib.asynccontextmanager
async def world(settings: Settings) -> AsyncIterator[World]:
    app = create_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        desks = []
        for number, role in enumerate(("counsellor", "counsellor", "supervisor")):
            password = f"password-{uuid.uuid4().hex}"
            async with app.state.sessions() as session:
                counsellor = await create_counsellor(
                    session, f"c{uuid.uuid4().hex[:8]}", f"พี่{number}", password, role
                )
                await session.commit()
            transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{number + 1}", 40_000))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://gateway")
            )
            desk = Desk(client, counsellor)
            await desk.login(password)
            desks.append(desk)
        yield World(app, *desks)


def test_the_policy_reads_as_its_table():
    """The rules of issue 13, spelled out: what each kind of counsellor may do in each state."""
    holder = Counsellor(id=1, role="counsellor")
    other = Counsellor(id=2, role="counsellor")
    boss = Counsellor(id=3, role="supervisor")

    def may(who: Counsellor, state: str) -> set[str]:
        case = Case(state=state, counsellor_id=1 if state in ("assigned", "closed") else None)
        return {a for a in policy.ACTIONS if policy.allowed(who, a, case)}

    acts = {"summary", "transcript", "reply", "note", "transfer", "close"}
    for who in (holder, other, boss):
        assert may(who, "offered") == set()  # not sent by the child: nobody
        assert may(who, "queued") == {"summary", "claim"} | ({"assign"} if who is boss else set())
        assert policy.allowed(who, "summary", None) is False  # a missing case
    assert may(holder, "assigned") == acts
    assert may(boss, "assigned") == acts
    assert may(other, "assigned") == set()
    assert may(holder, "closed") == set()
    assert may(other, "closed") == set()
    assert may(boss, "closed") == {"summary", "transcript"}


def test_a_second_counsellor_gets_nothing_of_cases_not_theirs(app_settings):
    async def scenario() -> None:
        async with world(app_settings) as w:
            words = {name: SECRET_WORDS.format(uuid.uuid4().hex[:8]) for name in "hoc"}
            held = await w.case(urgent=True, words=words["h"])
            offered = await w.case(urgent=False, words=words["o"])
            closed = await w.case(urgent=True, words=words["c"])
            for case_id in (held, closed):
                assert (await w.holder.post(case_id, "claim")).status_code == 200
            assert (await w.holder.post(closed, "close")).status_code == 200
            assert (await w.state(held), await w.state(offered), await w.state(closed)) == (
                "assigned",
                "offered",
                "closed",
            )
            missing = 10**6
            seen = []
            for case_id in (held, offered, closed, missing):
                answer = await w.other.client.get(f"/console/api/cases/{case_id}")
                assert (answer.status_code, answer.json()) == (404, {"error": "no such case"})
                for action in ENDPOINTS:
                    answer = await w.other.post(case_id, action)
                    assert (answer.status_code, answer.json()) == (404, {"error": "no such case"})
                    seen.append(answer.text)
            for path in ("/console/api/queue", "/console/api/me", "/console/api/strings"):
                answer = await w.other.client.get(path)
                assert answer.status_code == 200
                seen.append(answer.text)
            for path in ("/console/api/supervisor", "/console/api/audit"):
                assert (await w.other.client.get(path)).status_code == 403
            queue = (await w.other.client.get("/console/api/queue")).json()
            listed = {c["id"] for c in queue["queued"] + queue["mine"]}
            assert not listed & {held, offered, closed}
            assert not any(word in text for text in seen for word in words.values())
            # Nothing they tried changed anything, or was done in their name.
            assert (await w.state(held), await w.state(offered), await w.state(closed)) == (
                "assigned",
                "offered",
                "closed",
            )
            audit = await w.audit()
            mine = [e for e in audit if e["who"] == w.other.counsellor.display_name]
            assert {e["action"] for e in mine} == {"login"}

            # The holder reads the transcript; the supervisor too, and the closed case's.
            view = (await w.holder.client.get(f"/console/api/cases/{held}")).json()
            assert words["h"] in [m["text"] for m in view["transcript"]]
            assert (await w.holder.client.get(f"/console/api/cases/{closed}")).status_code == 404
            assert (
                await w.supervisor.client.get(f"/console/api/cases/{offered}")
            ).status_code == 404
            for case_id, word in ((held, words["h"]), (closed, words["c"])):
                view = (await w.supervisor.client.get(f"/console/api/cases/{case_id}")).json()
                assert word in [m["text"] for m in view["transcript"]]

    asyncio.run(scenario())


def test_a_queued_case_shows_only_the_approved_summary_until_claimed(app_settings):
    async def scenario() -> None:
        async with world(app_settings) as w:
            words = SECRET_WORDS.format(uuid.uuid4().hex[:8])
            queued = await w.case(urgent=True, words=words)
            for desk in (w.other, w.supervisor):
                answer = await desk.client.get(f"/console/api/cases/{queued}")
                assert answer.status_code == 200
                view = answer.json()
                assert view["summary"]["topics"] == ["sextortion"]
                assert view["transcript"] == [] and view["notes"] == []
                assert words not in answer.text
            assert not any(e["action"] == "read_transcript" for e in await w.audit())
            assert (await w.other.post(queued, "claim")).status_code == 200
            view = (await w.other.client.get(f"/console/api/cases/{queued}")).json()
            assert words in [m["text"] for m in view["transcript"]]

    asyncio.run(scenario())


def test_every_transcript_read_is_in_the_audit_log(app_settings):
    async def scenario() -> None:
        async with world(app_settings) as w:
            held = await w.case(urgent=True, words="hello")
            assert (await w.holder.post(held, "claim")).status_code == 200
            for desk in (w.holder, w.holder, w.supervisor):
                assert (await desk.client.get(f"/console/api/cases/{held}")).status_code == 200
            reads = [
                e
                for e in await w.audit()
                if e["action"] == "read_transcript" and e["case_id"] == held
            ]
            assert [e["who"] for e in reads] == [
                w.supervisor.counsellor.display_name,
                w.holder.counsellor.display_name,
                w.holder.counsellor.display_name,
            ]
            assert all(e["at"] for e in reads)

    asyncio.run(scenario())


def just_before(w: World, name: str, step) -> None:  # noqa: ANN001 (a coroutine function)
    """The handoff service's `name` runs `step` first: the console saw the case as it was, and
    it moved on before the action reached the database."""
    original = getattr(w.handoff, name)

    async def late(case_id: int, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        await step(case_id)
        return await original(case_id, *args, **kwargs)

    setattr(w.handoff, name, late)


@pytest.mark.parametrize("action", ["close", "reply", "note", "transfer"])
def test_the_timer_returns_the_case_as_the_counsellor_acts(app_settings, locales, action):
    """409 with the reason in the counsellor's language; nothing done, nothing sent."""

    async def scenario() -> None:
        async with world(app_settings) as w:
            case_id = await w.case(urgent=True, words="hello")
            assert (await w.holder.post(case_id, "claim")).status_code == 200
            just_before(w, action, w.timer_returns)
            for lang in ("en", "th"):
                answer = await w.holder.post(case_id, action, lang)
                assert answer.status_code == 409, answer.text
                assert answer.json()["error"] == locales.text("console_case_requeued", lang)
            assert await w.state(case_id) == "queued"
            async with w.sessions() as session:
                case = await session.get(Case, case_id)
                sent = await session.scalars(
                    select(Message.text).where(
                        Message.conversation_id == case.conversation_id,
                        Message.sender == "counsellor",
                    )
                )
                assert list(sent) == []

    asyncio.run(scenario())


@pytest.mark.parametrize("action", ["close", "reply", "note", "transfer"])
def test_acting_on_a_case_the_child_has_just_erased_is_404(app_settings, action):
    async def scenario() -> None:
        async with world(app_settings) as w:
            case_id = await w.case(urgent=True, words="hello")
            assert (await w.holder.post(case_id, "claim")).status_code == 200
            just_before(w, action, w.erased)
            answer = await w.holder.post(case_id, action)
            assert (answer.status_code, answer.json()) == (404, {"error": "no such case"})
            answer = await w.holder.post(case_id, action)  # and after it, the same
            assert (answer.status_code, answer.json()) == (404, {"error": "no such case"})

    asyncio.run(scenario())


def test_a_claim_that_loses_the_race_is_told_so(app_settings, locales):
    async def scenario() -> None:
        async with world(app_settings) as w:
            case_id = await w.case(urgent=True, words="hello")
            original = w.handoff.claim

            async def claim(case_id: int, counsellor: Counsellor) -> bool:
                assert await original(case_id, w.holder.counsellor)  # a colleague, a moment before
                return await original(case_id, counsellor)

            w.handoff.claim = claim
            answer = await w.other.post(case_id, "claim")
            assert answer.status_code == 409
            assert answer.json()["error"] == locales.text("console_claim_lost", "en")

    asyncio.run(scenario())
