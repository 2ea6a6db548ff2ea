"""What the console shows, as JSON: cases in the queue, one case whole, the supervisor's view."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff import cases, queue
from bot.handoff.summary import summary_text
from bot.language import reply_language
from bot.locales import Locales
from bot.store.handoff_models import AuditEntry, Case, CaseNote, Counsellor
from bot.store.models import Conversation, Message, as_utc, utcnow

PREVIEW_CHARS = 120
CANNED_TITLE_CHARS = 40
CANNED = ("hello", "not_your_fault", "are_you_safe", "still_there", "routes", "evidence", "goodbye")
ROUTES_AT_HAND = ("saidek_1387", "helpline_1300", "ticac", "thaihotline", "police", "takeitdown")
AUDIT_ROWS = 200


def _at(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment else None


def case_row(
    case: Case, conversation: Conversation, names: dict[int, str], now: datetime
) -> dict[str, Any]:
    summary = json.loads(case.summary or "{}")
    preview = (case.child_note or "")[:PREVIEW_CHARS]
    return {
        "id": case.id,
        "state": case.state,
        "urgent": case.urgent,
        "waiting_s": round(cases.waited(case, now)),
        "language": summary.get("language") or conversation.language,
        "channel": conversation.channel,
        "preview": preview,
        # ids: the console shows them by their labels (label_topic_*), never as they are
        "topics": list(summary.get("topics") or []),
        "counsellor": names.get(case.counsellor_id) if case.counsellor_id else None,
        "counsellor_id": case.counsellor_id,
        "returned": case.returned,
    }


async def _names(session: AsyncSession) -> dict[int, str]:
    rows = await session.execute(select(Counsellor.id, Counsellor.display_name))
    return {row.id: row.display_name for row in rows}


async def _open_rows(session: AsyncSession) -> list[tuple[Case, Conversation]]:
    rows = await session.execute(
        select(Case, Conversation)
        .join(Conversation, Conversation.id == Case.conversation_id)
        .where(Case.state.in_(("queued", "assigned")))
    )
    return [(row.Case, row.Conversation) for row in rows]


async def queue_view(session: AsyncSession, counsellor: Counsellor) -> dict[str, Any]:
    now, names = utcnow(), await _names(session)
    rows = await _open_rows(session)
    order = {case.id: i for i, case in enumerate(await queue.ordered(session))}
    queued = sorted((r for r in rows if r[0].state == "queued"), key=lambda r: order[r[0].id])
    mine = [r for r in rows if r[0].state == "assigned" and r[0].counsellor_id == counsellor.id]
    return {
        "queued": [case_row(c, v, names, now) for c, v in queued],
        "mine": [case_row(c, v, names, now) for c, v in mine],
    }


async def case_view(
    session: AsyncSession,
    locales: Locales,
    case: Case,
    language: str,
    whole: bool,
    speaker: Mapping[str, Any],
) -> dict[str, Any]:
    """One case; the transcript and the counsellors' notes only when `whole` (the policy's
    "transcript": the holder and supervisors), else only what the child approved. Canned
    replies are in the voice of `speaker` (bot/handoff/voice.py), who would send them."""
    conversation = await session.get(Conversation, case.conversation_id)
    names = await _names(session)
    summary = json.loads(case.summary or "{}")
    stored = summary.get("language") or conversation.language
    child_language = reply_language(None, stored, None, language, locales.languages)
    transcript, notes = [], []
    if whole:
        transcript = await session.scalars(
            select(Message)
            .where(Message.conversation_id == case.conversation_id)
            .order_by(Message.id)
        )
        notes = await session.scalars(
            select(CaseNote).where(CaseNote.case_id == case.id).order_by(CaseNote.id)
        )
    return {
        "case": case_row(case, conversation, names, utcnow()),
        "summary": summary,
        # The counsellor reads what the child saw and agreed to, in the child's words.
        "summary_text": summary_text(locales, summary, None, child_language),
        "child_note": case.child_note,
        "transcript": [_line(locales, m, child_language) for m in transcript],
        "notes": [
            {"by": names.get(n.counsellor_id), "text": n.text, "at": _at(n.created_at)}
            for n in notes
        ],
        # Canned replies go to the child, so they are in the child's language.
        "canned": [
            {"id": name, "text": text, "title": text[:CANNED_TITLE_CHARS]}
            for name in CANNED
            if (text := _canned(locales, name, child_language, speaker))
        ],
        "routes": [_route(locales, route, language) for route in ROUTES_AT_HAND],
        "counsellors": [{"id": i, "display_name": n} for i, n in sorted(names.items())],
    }


def _line(locales: Locales, message: Message, language: str) -> dict[str, Any]:
    """One transcript line; a button press reads as the button the child pressed."""
    kind, text = message.kind, message.text
    if message.sender == "user" and text.startswith("/"):
        kind, text = "button", locales.button_title(text, language) or text
    return {
        "id": message.id,
        "sender": message.sender,
        "kind": kind,
        "text": text,
        "at": _at(message.created_at),
    }


def _canned(locales: Locales, name: str, language: str, speaker: Mapping[str, Any]) -> str:
    rendered = locales.render(f"canned_{name}", language, {}, speaker)
    return rendered.text if rendered else ""


def _route(locales: Locales, route: str, language: str) -> dict[str, Any]:
    facts = locales.routes.get(route) or {}
    own = facts.get(language) or {}
    return {
        "id": route,
        "name": own.get("name") or route,
        "number": facts.get("number"),
        "website": facts.get("website") or own.get("page") or facts.get("page"),
        "hours": own.get("hours"),
    }


async def supervisor_view(session: AsyncSession, limit: int) -> dict[str, Any]:
    """Everything open, and who is online with their load: open chats of `limit`."""
    now, names = utcnow(), await _names(session)
    since = now - queue.ONLINE_WITHIN
    online = await session.scalars(
        select(Counsellor).where(Counsellor.last_seen_at >= since).order_by(Counsellor.id)
    )
    rows = [case_row(c, v, names, now) for c, v in await _open_rows(session)]
    rows.sort(key=lambda r: (not r["urgent"], -r["waiting_s"]))
    return {
        "online": [
            {
                "id": c.id,
                "display_name": c.display_name,
                "role": c.role,
                "open": sum(1 for r in rows if r["counsellor_id"] == c.id),
                "limit": limit,
            }
            for c in online
        ],
        "open": rows,
        "longest_wait_s": max((r["waiting_s"] for r in rows if r["state"] == "queued"), default=0),
    }


async def audit_view(session: AsyncSession) -> list[dict[str, Any]]:
    names = await _names(session)
    entries = await session.scalars(
        select(AuditEntry).order_by(AuditEntry.id.desc()).limit(AUDIT_ROWS)
    )
    return [
        {
            "at": _at(e.at),
            "who": names.get(e.counsellor_id) if e.counsellor_id else "system",
            "action": e.action,
            "case_id": e.case_id,
            "detail": e.detail,
        }
        for e in entries
    ]
