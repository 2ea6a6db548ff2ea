"""The handoff state machine: bot → offered → queued → assigned → closed → bot, every step recorded.

The conversation's `mode` mirrors its open case's state, so the router knows in one read whether
Rasa or a person answers. Claims, transfers and releases are single conditional UPDATEs: the
database, not the application, decides which of two simultaneous claims wins.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.handoff_models import AuditEntry, Case, Transition
from bot.store.models import Conversation, as_utc, utcnow

ALLOWED = {
    ("bot", "offered"),
    ("bot", "queued"),
    ("offered", "queued"),
    ("offered", "closed"),
    ("queued", "assigned"),
    ("queued", "closed"),
    ("assigned", "assigned"),
    ("assigned", "queued"),
    ("assigned", "closed"),
}
OPEN_STATES = ("offered", "queued", "assigned")


class TransitionRefused(Exception):
    """The case is not in a state that allows this step (e.g. someone else claimed it first)."""


async def open_case(session: AsyncSession, conversation_id: int) -> Case | None:
    return await session.scalar(
        select(Case)
        .where(Case.conversation_id == conversation_id, Case.state.in_(OPEN_STATES))
        .order_by(Case.id.desc())
        .limit(1)
    )


async def ever_urgent(session: AsyncSession, conversation_id: int) -> bool:
    """Whether this child was ever marked urgent (a case Rasa asked for as urgent, open or
    closed): their turns are never held behind others (bot/holding.py)."""
    found = await session.scalar(
        select(Case.id).where(Case.conversation_id == conversation_id, Case.urgent).limit(1)
    )
    return found is not None


def _record(
    session: AsyncSession, case: Case, before: str, after: str, actor: str, note: str | None
) -> None:
    session.add(
        Transition(case_id=case.id, from_state=before, to_state=after, actor=actor, note=note)
    )


async def _set_mode(session: AsyncSession, conversation_id: int, mode: str) -> None:
    await session.execute(
        update(Conversation).where(Conversation.id == conversation_id).values(mode=mode)
    )


def facts(summary: dict[str, Any]) -> dict[str, str | None]:
    """What insights count about a case, kept as columns: retention empties `summary` later."""
    topics = summary.get("topics") or []
    return {
        "language": summary.get("language"),
        "age_band": summary.get("age_band"),
        "role": summary.get("role"),
        "topic": topics[-1] if topics else None,
    }


async def start(
    session: AsyncSession, conversation: Conversation, summary: dict[str, Any], urgent: bool
) -> Case:
    """A new case for a handoff request: urgent ones go straight to the queue."""
    existing = await open_case(session, conversation.id)
    if existing is not None:
        if urgent and not existing.urgent:
            existing.urgent = True
        if existing.state == "offered" and urgent:
            await move(session, existing, "queued", "system", "urgent")
        return existing
    now = utcnow()
    state = "queued" if urgent else "offered"
    case = Case(
        conversation_id=conversation.id,
        state=state,
        urgent=urgent,
        summary=json.dumps(summary, ensure_ascii=False),
        **facts(summary),
        queued_at=now if urgent else None,
        child_waiting_since=now if urgent else None,
    )
    session.add(case)
    await session.flush()
    _record(session, case, "bot", state, "system" if urgent else "child", None)
    await _set_mode(session, conversation.id, state)
    return case


async def move(
    session: AsyncSession,
    case: Case,
    to: str,
    actor: str,
    note: str | None = None,
    counsellor_id: int | None = None,
    still: tuple[ColumnElement[bool], ...] = (),
) -> None:
    """One step of the machine, applied only if the case is still where the caller saw it
    (its state, and whatever else the caller's decision rested on: `still`)."""
    before = case.state
    if (before, to) not in ALLOWED:
        raise TransitionRefused(f"{before} → {to}")
    now = utcnow()
    values: dict[str, Any] = {"state": to}
    if to == "queued":
        # No place told yet: whoever queues it tells the child, not a concurrent queue update.
        values.update(
            counsellor_id=None,
            queued_at=case.queued_at or now,
            reminded_at=None,
            last_position=None,
        )
    if to == "assigned":
        # The child is waiting for the (new) counsellor's first words from now on.
        values.update(
            counsellor_id=counsellor_id, assigned_at=now, reminded_at=None, child_waiting_since=now
        )
    if to == "closed":
        values.update(closed_at=now)
    done = await session.execute(
        update(Case)
        .where(Case.id == case.id, Case.state == before, *still)
        .values(**values)
        .execution_options(synchronize_session=False)  # `case` is updated below
    )
    if done.rowcount != 1:
        raise TransitionRefused(f"case {case.id} changed meanwhile")
    for key, value in values.items():
        setattr(case, key, value)
    _record(session, case, before, to, actor, note)
    if to == "closed":
        _record(session, case, "closed", "bot", actor, None)
    await _set_mode(session, case.conversation_id, "bot" if to == "closed" else to)


async def claim(session: AsyncSession, case: Case, counsellor_id: int) -> bool:
    """True for exactly one of any number of simultaneous claims of a queued case. Only a queued
    case can be claimed: a claim that reads the case after another claim won must not become a
    transfer (assigned → assigned)."""
    if case.state != "queued":
        return False
    try:
        await move(session, case, "assigned", f"counsellor:{counsellor_id}", None, counsellor_id)
    except TransitionRefused:
        return False
    return True


async def open_chats(session: AsyncSession, counsellor_id: int) -> int:
    """How many chats the counsellor holds now."""
    return await session.scalar(
        select(func.count()).where(Case.state == "assigned", Case.counsellor_id == counsellor_id)
    )


def audit(
    session: AsyncSession,
    counsellor_id: int | None,
    action: str,
    case_id: int | None = None,
    detail: str | None = None,
) -> None:
    session.add(
        AuditEntry(counsellor_id=counsellor_id, action=action, case_id=case_id, detail=detail)
    )


def waited(case: Case, now: datetime | None = None) -> float:
    """Seconds the child has been waiting in the queue."""
    start_at = case.queued_at or case.created_at
    return max(0.0, ((now or utcnow()) - as_utc(start_at)).total_seconds())
