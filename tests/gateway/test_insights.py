"""Insights on a known set of contacts and cases, on SQLite and PostgreSQL: every number, the
suppression of small counts, Bangkok days, and no child's words anywhere in the answers."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from starlette.testclient import TestClient

from bot.app import create_app
from bot.config import Settings
from bot.console.auth import create_counsellor
from bot.console.insights import Insights, Range
from bot.store.db import make_engine, make_sessionmaker
from bot.store.handoff_models import AuditEntry, Case, CaseCategory, Transition
from bot.store.models import Conversation, Message
from tests.gateway.conftest import migrate, postgres_database, production_unavailable

SECRET_WORDS = "ความลับของเด็ก secret words"
HOURS = "08:00-22:00"
PASSWORD = "a long enough password"
RANGE = ("2026-11-01", "2026-11-07")


def bkk(moment: str) -> datetime:
    """A Bangkok wall-clock time as UTC."""
    return datetime.fromisoformat(moment + "+07:00").astimezone(timezone.utc)


@contextlib.contextmanager
def database(kind: str, tmp_path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'insights.db'}"
        return
    reason = production_unavailable()
    if reason:
        pytest.skip(reason)
    with postgres_database("insights") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request, tmp_path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        migrate(url)
        asyncio.run(seed(url))
        yield url


async def seed(url: str) -> None:
    """11 contacts in the range (7 LINE, 3 web chat, 1 Telegram), 8 cases queued in it."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    n = 0

    async def child(channel: str, language: str, *times: str) -> int:
        nonlocal n
        n += 1
        async with sessions() as session:
            conversation = Conversation(user_key=f"k{n:062d}", channel=channel, language=language)
            session.add(conversation)
            await session.flush()
            for at in times:
                for sender in ("user", "bot"):
                    session.add(
                        Message(
                            conversation_id=conversation.id,
                            sender=sender,
                            text=SECRET_WORDS,
                            created_at=bkk(at),
                        )
                    )
            await session.commit()
            return conversation.id

    async def handed(
        conversation_id: int,
        queued: str,
        wait_s: int | None,
        reply_s: int | None,
        categories: list[str],
        age_band: str | None = "13_15",
        role: str | None = "child",
    ) -> None:
        queued_at = bkk(queued)
        async with sessions() as session:
            case = Case(
                conversation_id=conversation_id,
                state="closed",
                summary="{}",
                child_note=SECRET_WORDS,
                age_band=age_band,
                role=role,
                language="th",
                topic="sextortion",
                created_at=queued_at,
                queued_at=queued_at,
                closed_at=queued_at + timedelta(hours=1),
            )
            session.add(case)
            await session.flush()
            if wait_s is not None:
                assigned = queued_at + timedelta(seconds=wait_s)
                session.add(
                    Transition(
                        case_id=case.id,
                        from_state="queued",
                        to_state="assigned",
                        actor="counsellor:1",
                        at=assigned,
                    )
                )
                # a later transfer is not the first assignment
                session.add(
                    Transition(
                        case_id=case.id,
                        from_state="assigned",
                        to_state="assigned",
                        actor="counsellor:1",
                        at=assigned + timedelta(seconds=5000),
                    )
                )
                if reply_s is not None:
                    for extra in (0, 900):
                        session.add(
                            AuditEntry(
                                action="reply",
                                case_id=case.id,
                                at=assigned + timedelta(seconds=reply_s + extra),
                            )
                        )
            session.add_all(
                CaseCategory(case_id=case.id, category=c, position=i)
                for i, c in enumerate(categories)
            )
            await session.commit()

    line = []
    for i in range(6):
        earlier = ("2026-10-20T12:00:00",) if i < 5 else ("2026-11-05T12:00:00",)
        first = "2026-11-02T10:00:00" if i < 4 else "2026-11-02T06:00:00"  # 2 before opening
        # two messages on one day are one contact
        line.append(await child("line", "th", first, "2026-11-02T10:30:00", *earlier))
    for _ in range(3):
        await child("webchat", "en", "2026-11-03T23:30:00")  # after closing
    # 06:30 in Bangkok on 1 November is still 31 October in UTC: a Bangkok day counts
    await child("telegram", "th", "2026-09-25T12:00:00", "2026-11-01T06:30:00")
    await child("telegram", "th", "2026-11-08T00:30:00")  # the day after the range
    waits = [60, 120, 180, 240, 300, 600]
    for i, conversation_id in enumerate(line):
        categories = ["violence.online_sexual_exploitation"]
        if i < 2:
            categories.append("mental_health.self_harming_behaviour")
        age, role = ("13_15", "child") if i else ("under_13", "caregiver")
        await handed(
            conversation_id, "2026-11-02T10:05:00", waits[i], 10 * (i + 1), categories, age, role
        )
    left = await child("webchat", "th")  # no contact in the range: cases count as cases
    await handed(left, "2026-11-03T09:00:00", None, None, [], None, None)
    await handed(left, "2026-11-04T09:00:00", None, None, [], None, None)
    await handed(line[0], "2026-10-25T09:00:00", 30, 5, ["violence.bullying"])  # before the range
    async with sessions() as session:
        await create_counsellor(session, "boss", "หัวหน้า", PASSWORD, "supervisor")
        await create_counsellor(session, "fon", "พี่ฝน", PASSWORD, "counsellor")
        await session.commit()
    await engine.dispose()


EXPECTED = {
    "from": "2026-11-01",
    "to": "2026-11-07",
    "contacts": 11,
    "by_channel": {"webchat": "<5", "line": 7, "telegram": "<5"},
    "by_language": {"en": "<5", "th": 8},
    "out_of_hours": 6,
    "repeat": 6,
    "handed": 8,
    "handed_percent": 73,
    "by_category": [
        {"id": "violence.online_sexual_exploitation", "count": 6},
        {"id": "mental_health.self_harming_behaviour", "count": "<5"},
    ],
    "by_age_role": [
        {"age_band": "13_15", "role": "child", "count": 5},
        {"age_band": "under_13", "role": "caregiver", "count": "<5"},
        {"age_band": "unknown", "role": "unknown", "count": "<5"},
    ],
    "wait_s": {"count": 6, "p50": 180, "p90": 600},
    "first_reply_s": {"count": 6, "p50": 30, "p90": 60},
    "left_queue": "<5",
    "helped": {"yes": 0, "no": 0},
}


def compute(url: str, first: str, last: str) -> dict:
    async def run() -> dict:
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                span = Range.parse(first, last, datetime(2026, 12, 1).date())
                return await Insights(session, span, HOURS).compute()
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_every_number_of_a_known_week(seeded):
    data = compute(seeded, *RANGE)
    assert {k: data[k] for k in EXPECTED} == EXPECTED
    days = {d["day"]: d for d in data["per_day"]}
    assert list(days) == [f"2026-11-0{i}" for i in range(1, 8)]
    assert days["2026-11-01"] == {"day": "2026-11-01", "webchat": 0, "line": 0, "telegram": "<5"}
    assert days["2026-11-02"] == {"day": "2026-11-02", "webchat": 0, "line": 6, "telegram": 0}
    assert days["2026-11-03"]["webchat"] == "<5"
    assert days["2026-11-05"]["line"] == "<5"
    assert all(d["line"] == 0 for k, d in days.items() if k in ("2026-11-04", "2026-11-06"))


def test_a_narrow_range_suppresses_what_becomes_small(seeded):
    data = compute(seeded, "2026-11-05", "2026-11-05")
    assert data["contacts"] == "<5"
    assert data["repeat"] == "<5"
    assert data["handed"] == 0 and data["handed_percent"] == "<5"  # of 1 to 4 contacts
    assert data["wait_s"] == {"count": 0, "p50": None, "p90": None}
    empty = compute(seeded, "2026-12-01", "2026-12-02")
    assert empty["contacts"] == 0 and empty["handed_percent"] is None


@pytest.mark.parametrize(
    "first,last", [("2026-11-07", "2026-11-01"), ("2025-01-01", "2026-11-01"), ("x", "y")]
)
def test_a_bad_range_is_refused(first, last):
    with pytest.raises(ValueError):
        Range.parse(first, last, datetime(2026, 12, 1).date())


@pytest.fixture
def client(seeded, tmp_path) -> Iterator[TestClient]:
    settings = dataclasses.replace(
        Settings.from_env(),
        database_url=seeded,
        tracker_store_url=f"sqlite:///{tmp_path / 'tracker.db'}",
        handoff_hours={"th": HOURS, "en": HOURS},
        default_language="th",
        console_secure_cookie=False,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        yield c


def sign_in(client: TestClient, username: str) -> None:
    client.cookies.clear()
    client.get("/console/login")
    csrf = client.cookies.get("console_csrf")
    done = client.post(
        "/console/login",
        data={"username": username, "password": PASSWORD, "csrf": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303


def test_supervisors_get_the_json_csv_and_page_others_do_not(client):
    query = f"?from={RANGE[0]}&to={RANGE[1]}"
    for path in ("/console/api/insights", "/console/api/insights.csv"):
        assert client.get(path + query).status_code == 401
    assert client.get("/console/insights", follow_redirects=False).status_code == 303
    sign_in(client, "fon")
    for path in ("/console/api/insights", "/console/api/insights.csv", "/console/insights"):
        assert client.get(path + query).status_code == 403, path
    sign_in(client, "boss")
    data = client.get("/console/api/insights" + query).json()
    assert {k: data[k] for k in EXPECTED} == EXPECTED
    exported = client.get("/console/api/insights.csv" + query + "&lang=en")
    assert exported.headers["content-type"].startswith("text/csv")
    table = {(r["measure"], r["group"]): r for r in csv.DictReader(io.StringIO(exported.text))}
    assert table[("contacts", "")]["value"] == "11"
    assert table[("contacts_per_day", "2026-11-02 line")]["value"] == "6"
    assert table[("contacts_per_day", "2026-11-01 telegram")]["value"] == "<5"
    assert table[("by_category", "violence.online_sexual_exploitation")]["label"] == (
        "Violence / Online sexual exploitation"
    )
    assert table[("by_category", "mental_health.self_harming_behaviour")]["value"] == "<5"
    assert table[("wait_s", "p90")]["value"] == "600"
    assert table[("left_queue", "")]["value"] == "<5"
    assert table[("repeat", "")]["value"] == "6"
    page = client.get("/console/insights" + query + "&lang=th")
    assert page.status_code == 200
    assert "ความรุนแรง / การแสวงหาประโยชน์ทางเพศจากเด็ก (Online)" in page.text
    assert "&lt;5" in page.text and "<svg" in page.text
    for text in (data.__repr__(), exported.text, page.text):
        assert "secret words" not in text and "ความลับ" not in text
    assert client.get("/console/api/insights?from=2026-11-07&to=2026-11-01").status_code == 400
    assert client.get("/console/insights?from=nonsense").status_code == 400
