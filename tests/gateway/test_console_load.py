"""A fair queue (issue 15, section 4): each counsellor holds at most CONSOLE_MAX_OPEN_CHATS chats
(default 3; a claim beyond it is refused in words), supervisors see who is online with their load,
and a supervisor can assign a queued case to a counsellor, through bot/console/policy.py. Through
the real app in-process on a migrated SQLite database."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.store.handoff_models import AuditEntry, Case
from tests.gateway.conftest import migrate, postgres_database, require_production, told
from tests.gateway.test_console_access import app_settings, world  # noqa: F401 (the fixture)


async def assign(desk, case_id: int, body: dict, lang: str = "en"):  # noqa: ANN001, ANN201
    return await desk.client.post(
        f"/console/api/cases/{case_id}/assign?lang={lang}",
        json=body,
        headers={"X-CSRF-Token": desk.csrf},
    )


async def held(w, case_id: int) -> tuple[str, int | None]:  # noqa: ANN001 (a World)
    async with w.sessions() as session:
        case = await session.get(Case, case_id)
        return case.state, case.counsellor_id


def test_the_limit_of_open_chats_is_three_unless_set(monkeypatch):
    monkeypatch.delenv("CONSOLE_MAX_OPEN_CHATS", raising=False)
    assert Settings.from_env().console_max_open_chats == 3
    monkeypatch.setenv("CONSOLE_MAX_OPEN_CHATS", "5")
    assert Settings.from_env().console_max_open_chats == 5


def test_a_claim_beyond_the_limit_is_refused_in_words_and_the_case_stays_queued(
    app_settings,  # noqa: F811 (the fixture)
    locales,
):
    settings = dataclasses.replace(app_settings, console_max_open_chats=2)

    async def scenario() -> None:
        async with world(settings) as w:
            first, second, third = [await w.case(urgent=True, words="ช่วยด้วย") for _ in range(3)]
            for case_id in (first, second):
                assert (await w.holder.post(case_id, "claim")).status_code == 200
            refused = await w.holder.post(third, "claim", lang="th")
            assert refused.status_code == 409
            assert refused.json() == {
                "error": locales.text("console_limit_reached", "th", {"limit": 2})
            }
            assert await held(w, third) == ("queued", None)
            # A colleague with free hands takes it; the holder can again once a chat is closed.
            closed = await w.holder.client.post(
                f"/console/api/cases/{first}/close",
                json={"categories": ["violence.online_sexual_exploitation"]},
                headers={"X-CSRF-Token": w.holder.csrf},
            )
            assert closed.status_code == 200, closed.text
            assert (await w.holder.post(third, "claim")).status_code == 200
            assert await held(w, third) == ("assigned", w.holder.counsellor.id)

    asyncio.run(scenario())


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_simultaneous_claims_by_one_counsellor_cannot_pass_the_limit(
    app_settings,  # noqa: F811 (the fixture)
    database,
):
    settings = dataclasses.replace(app_settings, console_max_open_chats=2)
    with contextlib.ExitStack() as stack:
        if database == "postgresql":
            require_production()
            url = stack.enter_context(postgres_database("load"))
            migrate(url)
            settings = dataclasses.replace(settings, database_url=url)
        asyncio.run(simultaneous_claims(settings))


async def simultaneous_claims(settings: Settings) -> None:
    """Four claims at once by a counsellor with room for two: two win, two are refused."""
    async with world(settings) as w:
        waiting = [await w.case(urgent=True, words="ช่วยด้วย") for _ in range(4)]
        answers = await asyncio.gather(*(w.holder.post(c, "claim") for c in waiting))
        assert sorted(a.status_code for a in answers) == [200, 200, 409, 409]
        states = [await held(w, c) for c in waiting]
        assert states.count(("assigned", w.holder.counsellor.id)) == 2


def test_supervisors_see_who_is_online_and_their_load(app_settings):  # noqa: F811
    async def scenario() -> None:
        async with world(app_settings) as w:
            for _ in range(2):
                case_id = await w.case(urgent=True, words="ช่วยด้วย")
                assert (await w.holder.post(case_id, "claim")).status_code == 200
            view = (await w.supervisor.client.get("/console/api/supervisor")).json()
            load = {p["id"]: (p["open"], p["limit"]) for p in view["online"]}
            assert load[w.holder.counsellor.id] == (2, 3)
            assert load[w.other.counsellor.id] == (0, 3)

    asyncio.run(scenario())


def test_a_supervisor_assigns_a_queued_case_within_the_counsellors_limit(
    app_settings,  # noqa: F811 (the fixture)
    locales,
):
    settings = dataclasses.replace(app_settings, console_max_open_chats=1)

    async def scenario() -> None:
        async with world(settings) as w:
            case_id = await w.case(urgent=True, words="ช่วยด้วย")
            to_other = {"to": w.other.counsellor.id}
            # Only supervisors assign; a counsellor cannot hand cases to colleagues.
            assert (await assign(w.holder, case_id, to_other)).status_code == 403
            assert await held(w, case_id) == ("queued", None)

            answer = await assign(w.supervisor, case_id, to_other)
            assert answer.status_code == 200, answer.text
            assert await held(w, case_id) == ("assigned", w.other.counsellor.id)
            async with w.sessions() as session:
                conversation_id = (await session.get(Case, case_id)).conversation_id
                entry = await session.scalar(
                    select(AuditEntry).where(AuditEntry.action == "assign")
                )
            assert (entry.counsellor_id, entry.case_id) == (w.supervisor.counsellor.id, case_id)
            voice = {"name": "พี่1", "particle": "ค่ะ", "particle_soft": "คะ"}
            assert (await told(w.sessions, conversation_id))[-1] == locales.text(
                "utter_handoff_assigned", "th", voice
            )
            # The case is the counsellor's now: its transcript is theirs to read.
            assert (await w.other.client.get(f"/console/api/cases/{case_id}")).status_code == 200

            # Assigned already: cannot be assigned again (a colleague has it).
            again = await assign(w.supervisor, case_id, {"to": w.holder.counsellor.id})
            assert again.status_code == 409
            assert again.json()["error"] == locales.text("console_claim_lost", "en")

            # The colleague's hands are full (limit 1): refused, and said whose.
            second = await w.case(urgent=True, words="ช่วยด้วย")
            full = await assign(w.supervisor, second, to_other)
            assert full.status_code == 409
            assert full.json() == {
                "error": locales.text("console_assignee_full", "en", {"name": "พี่1", "limit": 1})
            }
            assert await held(w, second) == ("queued", None)
            for bad in ({"to": 999_999}, {"to": "x"}, {}):
                refused = await assign(w.supervisor, second, bad)
                assert refused.status_code in (400, 409), bad
            assert await held(w, second) == ("queued", None)

    asyncio.run(scenario())
