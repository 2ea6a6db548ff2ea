"""The helpline's contact categories: exactly ../shared/CATEGORIES.md, one to three per closed case,
suggested from the assistant's topic; and every console label said in words, never in code."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool
from starlette.testclient import TestClient

from bot.app import create_app
from bot.config import Settings
from bot.console.auth import create_counsellor
from bot.console.routes import strings
from bot.handoff.categories import Categories, CategoryError
from bot.handoff.events import Events
from bot.handoff.relay import Relay
from bot.handoff.service import Handoff, NotAllowed
from bot.store.conversations import get_or_create
from bot.store.db import make_engine, make_sessionmaker, sync_url
from bot.store.handoff_models import Case, CaseCategory
from bot.store.models import utcnow
from components.topics import TOPICS
from tests.gateway.conftest import ROOT, migrate

SHARED = ROOT.parent / "shared" / "CATEGORIES.md"
IDENTIFIER = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def categories() -> Categories:
    return Categories(ROOT / "locales" / "categories.yml")


def table() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(th, en, [(th, en)]) rows of the shared categories table."""
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not beside this checkout")
    rows = []
    for line in SHARED.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| ") or line.startswith("| category"):
            continue
        th, en, subs = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows.append((th, en, [tuple(s.split(" — ")) for s in subs.split("; ")]))
    return rows


def test_the_categories_are_the_helpline_s_own_labels_in_order(categories):
    listing = categories.listing()
    assert [
        (c["th"], c["en"], [(s["th"], s["en"]) for s in c["subcategories"]]) for c in listing
    ] == [(th, en, list(subs)) for th, en, subs in table()]
    ids = [s["id"] for c in listing for s in c["subcategories"]]
    assert len(ids) == len(set(ids)) == 75
    assert all(len(i) <= 64 for i in ids)  # case_categories.category is VARCHAR(64)


def test_the_topic_suggests_and_the_counsellor_chooses_one_to_three(categories):
    assert set(categories.suggestions) <= set(TOPICS)
    assert categories.suggested(["sextortion"]) == ["violence.online_sexual_exploitation"]
    assert categories.label("violence.online_sexual_exploitation", "en") == (
        "Violence / Online sexual exploitation"
    )
    assert categories.suggested(["greeting", "sextortion", "image_shared", "self_harm"]) == [
        "mental_health.self_harming_behaviour",
        "violence.online_sexual_exploitation",
    ]
    assert categories.checked(["violence.bullying", "family.other"]) == [
        "violence.bullying",
        "family.other",
    ]
    four = ["violence.bullying", "family.other", "peers.other", "sexuality.other"]
    for bad in ([], four, ["violence.bullying"] * 2, ["violence"], "violence.bullying", [1]):
        with pytest.raises(CategoryError):
            categories.checked(bad)


# An audit-log action written in bot/: cases.audit(session, ...) or a step's
# auth._audited(connection, ...).
AUDITED = re.compile(r'audit(?:ed)?\(\s*(?:session|connection),\s*[^,]+,\s*"([a-z_]+)"')


def test_no_console_label_is_a_code_identifier(locales):
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(locales=locales)))
    for language in ("th", "en"):
        labels = strings(request, language)
        leaked = {k: v for k, v in labels.items() if IDENTIFIER.search(v)}
        assert leaked == {}
        needed = (
            [f"label_topic_{t}" for t in TOPICS]
            + [f"console_channel_{c}" for c in ("webchat", "line", "telegram")]
            + [f"console_state_{s}" for s in ("offered", "queued", "assigned", "closed")]
            + [f"label_language_{lang}" for lang in ("th", "en")]
        )
        actions = set()
        for path in [*(ROOT / "bot").rglob("*.py")]:
            actions |= set(AUDITED.findall(path.read_text()))
        assert {"claim", "close", "erased", "login_locked"} <= actions
        needed += [f"console_action_{a}" for a in actions]
        assert [n for n in needed if n not in labels] == []


# -- closing a case, on a migrated database ----------------------------------------------------


@pytest.fixture
def world(tmp_path, locales) -> Iterator:
    url = f"sqlite:///{tmp_path / 'categories.db'}"
    migrate(url)
    loop = asyncio.new_event_loop()
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    handoff = Handoff(sessions, locales, Settings.from_env(), Relay(sessions, {}), Events())
    yield loop.run_until_complete, handoff, sessions, url
    loop.run_until_complete(engine.dispose())
    loop.close()


async def assigned_case(handoff: Handoff, sessions) -> tuple[int, object]:
    async with sessions() as session:
        conversation = await get_or_create(session, uuid.uuid4().hex, "line")
        counsellor = await create_counsellor(
            session, uuid.uuid4().hex[:8], "พี่ฝน", PASSWORD, "counsellor"
        )
        counsellor.last_seen_at = utcnow()
        await session.commit()
    summary = {"role": "caregiver", "age_band": "13_15", "topics": ["grooming", "sextortion"]}
    await handoff.request(conversation.id, {**summary, "urgent": True}, "th")
    async with sessions() as session:
        case = await session.scalar(select(Case).where(Case.conversation_id == conversation.id))
    assert await handoff.claim(case.id, counsellor)
    return case.id, counsellor


def test_a_case_closes_with_its_categories_and_keeps_its_facts(world):
    run, handoff, sessions, _ = world
    case_id, counsellor = run(assigned_case(handoff, sessions))
    for refused in ([], ["x"], ["violence.bullying"] * 4):
        with pytest.raises(NotAllowed):
            run(handoff.close(case_id, counsellor, refused))
    chosen = ["violence.online_sexual_exploitation", "violence.online_sexual_abuse", "family.other"]
    run(handoff.close(case_id, counsellor, chosen))

    async def stored() -> tuple:
        async with sessions() as session:
            case = await session.get(Case, case_id)
            rows = await session.scalars(
                select(CaseCategory.category)
                .where(CaseCategory.case_id == case_id)
                .order_by(CaseCategory.position)
            )
            return case.state, list(rows), (case.language, case.age_band, case.role, case.topic)

    assert run(stored()) == ("closed", chosen, ("th", "13_15", "caregiver", "sextortion"))


def test_the_categories_api_and_the_suggestion_of_an_open_case(world, tmp_path):
    run, handoff, sessions, url = world
    case_id, counsellor = run(assigned_case(handoff, sessions))
    settings = dataclasses.replace(
        Settings.from_env(),
        database_url=url,
        tracker_store_url=f"sqlite:///{tmp_path / 'tracker.db'}",
        console_secure_cookie=False,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert client.get("/console/api/categories").status_code == 401
        client.get("/console/login")
        client.post(
            "/console/login",
            data={
                "username": counsellor.username,
                "password": PASSWORD,
                "csrf": client.cookies.get("console_csrf"),
            },
        )
        listing = client.get("/console/api/categories").json()
        assert listing["max_per_case"] == 3
        assert listing["categories"][1]["th"] == "ความรุนแรง"
        assert listing["categories"][1]["subcategories"][10] == {
            "id": "violence.online_sexual_exploitation",
            "th": "การแสวงหาประโยชน์ทางเพศจากเด็ก (Online)",
            "en": "Online sexual exploitation",
        }
        view = client.get(f"/console/api/cases/{case_id}").json()
        assert view["suggested"] == [
            "violence.online_sexual_exploitation",
            "violence.online_sexual_abuse",
        ]
        assert "wrapups" not in view


def test_the_migration_keeps_former_wrap_ups_as_categories(tmp_path):
    """0009 on a database with closed cases: their wrap-up becomes a category, their summary's
    facts become columns."""
    url = f"sqlite:///{tmp_path / 'before.db'}"
    env = {**os.environ, "DATABASE_URL": url}
    alembic = [str(ROOT / ".venv/gateway/bin/alembic")]
    subprocess.run(
        [*alembic, "upgrade", "0006"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    engine = create_engine(sync_url(url), poolclass=NullPool)
    summary = json.dumps({"language": "en", "age_band": "under_13", "topics": ["grooming"]})
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO conversations (id, user_key, channel, mode, created_at, updated_at)"
                " VALUES (1, 'k', 'line', 'bot', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO cases (id, conversation_id, state, urgent, summary, returned, wrapup,"
                " created_at) VALUES (7, 1, 'closed', 0, :s, 0, 'online_sextortion',"
                " CURRENT_TIMESTAMP)"
            ),
            {"s": summary},
        )
    subprocess.run(
        [*alembic, "upgrade", "head"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    with engine.connect() as connection:
        assert connection.execute(text("SELECT case_id, category FROM case_categories")).all() == [
            (7, "violence.online_sexual_exploitation")
        ]
        assert connection.execute(
            text("SELECT language, age_band, role, topic FROM cases")
        ).all() == [("en", "under_13", None, "grooming")]
    engine.dispose()
