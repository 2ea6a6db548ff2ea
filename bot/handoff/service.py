"""The handoff as the child and the counsellors live it: offer, consent, queue, relay, close.

The router calls `request` when Rasa asks for a person and `from_child` for every message while a
case is open; the console calls the counsellor actions. Everything the child is told comes from
locales/ in the child's language; everything that changes a case is recorded and announced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.console import policy
from bot.handoff import cases, queue, voice
from bot.handoff.categories import Categories, CategoryError
from bot.handoff.events import Events
from bot.handoff.relay import Relay
from bot.handoff.summary import MAX_NOTE_CHARS, summary_text
from bot.locales import Locales
from bot.message import Outgoing
from bot.store.handoff_models import Case, CaseCategory, CaseNote, Counsellor
from bot.store.models import Conversation, as_utc, utcnow

AGREE = "/handoff_agree"
CANCEL = "/handoff_cancel"
HELPED = {"/handoff_helped_yes": True, "/handoff_helped_no": False}
MAX_REPLY_CHARS = 4000


class NotAllowed(Exception):
    """The request cannot be done as asked (an empty reply, an unknown category or colleague)."""


class AtLimit(NotAllowed):
    """The counsellor already holds as many chats as one may (CONSOLE_MAX_OPEN_CHATS); `key`
    names the sentence in locales/ that says so, filled with `values`."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key, self.values = key, values


class Changed(NotAllowed):
    """The case is no longer where the console saw it (back in the queue, closed, transferred,
    erased): nothing was done, and the console re-reads the case to say why."""


@dataclass(frozen=True)
class Place:
    position: int
    minutes: int


class Handoff:
    def __init__(
        self,
        sessions: async_sessionmaker,
        locales: Locales,
        settings: Settings,
        relay: Relay,
        events: Events,
    ) -> None:
        self._sessions = sessions
        self._locales = locales
        self._settings = settings
        self._relay = relay
        self.events = events
        self.categories = Categories(locales.directory / "categories.yml")

    # -- the child's side ----------------------------------------------------------------------

    async def request(
        self, conversation_id: int, summary: dict[str, Any], language: str
    ) -> list[Outgoing]:
        """Rasa asked for a person: urgent goes straight to the queue, the rest is offered."""
        summary = {**summary, "language": summary.get("language") or language}
        async with self._sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
            case = await cases.start(session, conversation, summary, bool(summary.get("urgent")))
            await session.commit()
        if case.state == "offered":
            return [self._summary_message("utter_handoff_summary", case, language)]
        # An urgent case: every open console sounds and shows it at once, before the child's
        # answer is composed.
        if summary.get("urgent"):
            self.events.urgent(case.id)
        else:
            self.events.changed(case.id)
        notice = await self._queue_notice(case.id, language)
        await self.announce(exclude=case.id)
        # After self-harm the first line is 1669 and a line to talk; 191 is for danger from others.
        self_harm = summary.get("urgent_kind") == "self_harm"
        urgent = "utter_handoff_urgent_self_harm" if self_harm else "utter_handoff_urgent"
        return [self._summary_message(urgent, case, language), notice]

    async def from_child(
        self, conversation_id: int, text: str, kind: str, language: str
    ) -> list[Outgoing] | None:
        """The answer to a child's message while a case is open; None when no case is open
        after all (the bot answers)."""
        async with self._sessions() as session:
            case = await cases.open_case(session, conversation_id)
            if case is None:
                await session.execute(
                    Conversation.__table__.update()
                    .where(Conversation.id == conversation_id)
                    .values(mode="bot")
                )
                await session.commit()
                return None
            if text == CANCEL:
                await cases.move(session, case, "closed", "child", "cancelled by the child")
                await session.commit()
                self.events.changed(case.id)
                await self.announce()
                return [self._say("utter_handoff_cancelled", language, case)]
            if case.state == "offered":
                return await self._offered(session, case, text, kind, language)
            if case.state == "assigned" and case.child_waiting_since is None:
                case.child_waiting_since = utcnow()
                await session.commit()
        self.events.changed(case.id)
        if case.state == "queued":
            place = await self._place(case.id)
            return [
                self._say("utter_handoff_message_kept", language, case, position=place.position)
            ]
        return []

    async def _offered(
        self, session: AsyncSession, case: Case, text: str, kind: str, language: str
    ) -> list[Outgoing]:
        if text == AGREE:
            await cases.move(session, case, "queued", "child", "agreed to the summary")
            case.child_waiting_since = utcnow()
            await session.commit()
            self.events.changed(case.id)
            notice = await self._queue_notice(case.id, language)
            await self.announce(exclude=case.id)
            return [notice]
        if kind == "text" and text and not text.startswith("/"):
            note = "\n".join(filter(None, [case.child_note, text]))
            case.child_note = note[:MAX_NOTE_CHARS]
            await session.commit()
        return [self._summary_message("utter_handoff_summary", case, language)]

    # -- the counsellors' side -----------------------------------------------------------------

    async def claim(self, case_id: int, counsellor: Counsellor) -> bool:
        """False if a colleague was first; AtLimit if this counsellor's hands are full."""
        async with self._sessions() as session:
            case = await session.get(Case, case_id)
            if not policy.allowed(counsellor, "claim", case):
                return False
            await self._room_for(session, counsellor, "console_limit_reached")
            if not await cases.claim(session, case, counsellor.id):
                await session.rollback()
                return False
            cases.audit(session, counsellor.id, "claim", case.id)
            await session.commit()
        await self._tell(case, "utter_handoff_assigned", **voice.values(counsellor))
        self.events.changed(case_id)
        await self.announce()
        return True

    async def assign(self, case_id: int, supervisor: Counsellor, to: int) -> None:
        """A supervisor gives a queued case to a counsellor, within that counsellor's limit."""
        async with self._sessions() as session:
            case = await session.get(Case, case_id, populate_existing=True)
            if not policy.allowed(supervisor, "assign", case):
                raise Changed(f"case {case_id} is not queued")
            target = await session.get(Counsellor, to)
            if target is None:
                raise NotAllowed("no such colleague")
            await self._room_for(session, target, "console_assignee_full", name=target.display_name)
            note = f"assigned to counsellor {target.id}"
            try:
                await cases.move(
                    session, case, "assigned", f"counsellor:{supervisor.id}", note, target.id
                )
            except cases.TransitionRefused as refused:
                raise Changed(str(refused)) from None
            cases.audit(session, supervisor.id, "assign", case.id, f"to counsellor {target.id}")
            await session.commit()
        await self._tell(case, "utter_handoff_assigned", **voice.values(target))
        self.events.changed(case_id)
        await self.announce()

    async def _room_for(
        self, session: AsyncSession, counsellor: Counsellor, key: str, **values: Any
    ) -> None:
        """AtLimit unless `counsellor` holds fewer chats than the limit. Their row is held first
        (a no-op UPDATE), so two claims at once by one counsellor are counted one after the
        other and cannot both take the last place."""
        await session.execute(
            update(Counsellor).where(Counsellor.id == counsellor.id).values(id=Counsellor.id)
        )
        limit = self._settings.console_max_open_chats
        if await cases.open_chats(session, counsellor.id) >= limit:
            await session.rollback()
            raise AtLimit(key, limit=limit, **values)

    async def reply(self, case_id: int, counsellor: Counsellor, text: str) -> None:
        text = text.strip()[:MAX_REPLY_CHARS]
        if not text:
            raise NotAllowed("empty reply")
        async with self._sessions() as session:
            case = await self._own(
                session, case_id, counsellor, "reply", child_waiting_since=None, reminded_at=None
            )
            cases.audit(session, counsellor.id, "reply", case.id)
            await session.commit()
        await self._relay.send(case.conversation_id, "counsellor", [Outgoing(text=text)])
        self.events.changed(case_id)

    async def note(self, case_id: int, counsellor: Counsellor, text: str) -> None:
        text = text.strip()[:MAX_REPLY_CHARS]
        if not text:
            raise NotAllowed("empty note")
        async with self._sessions() as session:
            case = await self._own(session, case_id, counsellor, "note")
            session.add(CaseNote(case_id=case.id, counsellor_id=counsellor.id, text=text))
            cases.audit(session, counsellor.id, "note", case.id)
            await session.commit()
        self.events.changed(case_id)

    async def transfer(
        self, case_id: int, counsellor: Counsellor, to: int | None, note: str
    ) -> None:
        """Warm transfer to a named colleague (with a note they read first), or to the queue."""
        note = note.strip()[:MAX_REPLY_CHARS]
        async with self._sessions() as session:
            case = await self._own(session, case_id, counsellor, "transfer")
            target = await session.get(Counsellor, to) if to is not None else None
            if to is not None and (target is None or target.id == case.counsellor_id):
                raise NotAllowed("no such colleague")
            actor = f"counsellor:{counsellor.id}"
            try:
                if target is not None:
                    await cases.move(session, case, "assigned", actor, note or None, target.id)
                else:
                    await cases.move(session, case, "queued", actor, note or None)
            except cases.TransitionRefused as refused:
                raise Changed(str(refused)) from None
            if note:
                session.add(CaseNote(case_id=case.id, counsellor_id=counsellor.id, text=note))
            detail = f"to counsellor {target.id}" if target else "to the queue"
            cases.audit(session, counsellor.id, "transfer", case.id, detail)
            await session.commit()
        if target is not None:
            await self._tell(case, "utter_handoff_transferred", **voice.values(target))
        else:
            await self._requeued(case)
        self.events.changed(case_id)
        await self.announce()

    async def close(self, case_id: int, counsellor: Counsellor, chosen: object) -> None:
        """Ends the chat with one to three of the helpline's categories (locales/categories.yml)."""
        try:
            categories = self.categories.checked(chosen)
        except CategoryError as refused:
            raise NotAllowed(str(refused)) from None
        async with self._sessions() as session:
            case = await self._own(session, case_id, counsellor, "close", helped_asked=True)
            detail = ",".join(categories)
            try:
                await cases.move(session, case, "closed", f"counsellor:{counsellor.id}", detail)
            except cases.TransitionRefused as refused:  # not reached while `_own` holds the row
                raise Changed(str(refused)) from None
            session.add_all(
                CaseCategory(case_id=case.id, category=category, position=i)
                for i, category in enumerate(categories)
            )
            cases.audit(session, counsellor.id, "close", case.id, detail)
            await session.commit()
        await self._tell(case, "utter_handoff_ended")
        await self._tell(case, "utter_handoff_helped")
        self.events.changed(case_id)
        await self.announce()

    async def helped(self, conversation_id: int, answer: str, language: str) -> list[Outgoing]:
        """The child's answer to "did this help?": kept once, for the chat it was asked about
        (the last one a counsellor closed); a second press changes nothing."""
        async with self._sessions() as session:
            asked = (
                select(Case.id)
                .where(Case.conversation_id == conversation_id, Case.helped_asked)
                .order_by(Case.id.desc())
                .limit(1)
                .scalar_subquery()
            )
            await session.execute(
                update(Case)
                .where(Case.id == asked, Case.helped.is_(None))
                .values(helped=HELPED[answer])
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        return [self._say("utter_handoff_helped_thanks", language)]

    async def _own(
        self,
        session: AsyncSession,
        case_id: int,
        counsellor: Counsellor,
        action: policy.Action,
        **values: Any,
    ) -> Case:
        """The case, if `counsellor` may still do `action` to it (bot/console/policy.py), held
        for this transaction: a conditional UPDATE (with `values`) that the no-answer timer, a
        transfer or an erasure cannot slip past. Changed if any of them came first."""
        case = await session.get(Case, case_id, populate_existing=True)
        if not policy.allowed(counsellor, action, case):
            raise Changed(f"case {case_id} is not open to this counsellor")
        held = await session.execute(
            update(Case)
            .where(
                Case.id == case.id,
                Case.state == case.state,
                Case.counsellor_id == case.counsellor_id,
            )
            .values(state=Case.state, **values)
            .execution_options(synchronize_session=False)
        )
        if held.rowcount != 1:
            raise Changed(f"case {case_id} changed meanwhile")
        for key, value in values.items():
            setattr(case, key, value)
        return case

    # -- no answer in time ---------------------------------------------------------------------

    async def check_waiting(self, now: datetime | None = None) -> None:
        """Reminds a counsellor whose child has waited too long, then returns the chat to the
        queue (marked, so the supervisor sees it). Every gateway replica runs this: each step is
        a conditional UPDATE, so exactly one of them reminds, returns or tells a child."""
        now = now or utcnow()
        async with self._sessions() as session:
            assigned = list(
                await session.scalars(
                    select(Case).where(
                        Case.state == "assigned", Case.child_waiting_since.is_not(None)
                    )
                )
            )
        for case in assigned:
            waited = (now - as_utc(case.child_waiting_since)).total_seconds()
            if waited >= self._settings.handoff_return_after_s:
                await self._return_unanswered(case, now)
            elif waited >= self._settings.handoff_remind_after_s and case.reminded_at is None:
                await self._remind(case, now)

    async def _remind(self, case: Case, now: datetime) -> None:
        """Reminds the case's counsellor, unless someone else did or the child was answered."""
        due = now - timedelta(seconds=self._settings.handoff_remind_after_s)
        async with self._sessions() as session:
            marked = await session.execute(
                update(Case)
                .where(
                    Case.id == case.id,
                    Case.state == "assigned",
                    Case.counsellor_id == case.counsellor_id,
                    Case.reminded_at.is_(None),
                    Case.child_waiting_since <= due,
                )
                .values(reminded_at=now)
                .execution_options(synchronize_session=False)
            )
            if marked.rowcount != 1:
                return
            cases.audit(session, None, "reminder", case.id, f"counsellor {case.counsellor_id}")
            await session.commit()
        self.events.publish({"type": "reminder", "case": case.id, "counsellor": case.counsellor_id})

    async def _return_unanswered(self, case: Case, now: datetime) -> None:
        """Back to the queue, unless the counsellor answered (or another replica returned it)
        since `case` was read."""
        due = now - timedelta(seconds=self._settings.handoff_return_after_s)
        async with self._sessions() as session:
            fresh = await session.get(Case, case.id)
            try:
                await cases.move(
                    session,
                    fresh,
                    "queued",
                    "system",
                    "no answer in time",
                    still=(
                        Case.counsellor_id == case.counsellor_id,
                        Case.child_waiting_since <= due,
                    ),
                )
            except cases.TransitionRefused:
                return
            fresh.returned = True
            cases.audit(session, None, "returned", case.id, f"counsellor {case.counsellor_id}")
            await session.commit()
        await self._requeued(fresh)
        self.events.changed(case.id)
        await self.announce()

    # -- what the child is told ----------------------------------------------------------------

    async def _place(self, case_id: int) -> Place:
        async with self._sessions() as session:
            line = await queue.ordered(session)
            online = await queue.online_counsellors(session)
            per_case = await queue.recent_wait_minutes(
                session, self._settings.handoff_minutes_per_case
            )
        ids = [c.id for c in line]
        position = ids.index(case_id) + 1 if case_id in ids else 1
        return Place(position, queue.estimate_minutes(position, per_case, online))

    async def _queue_notice(self, case_id: int, language: str) -> Outgoing:
        """Where the child stands, honestly: closed hours and nobody online are said as such."""
        hours = queue.Hours(self._settings.handoff_hours.get(language, ""))
        async with self._sessions() as session:
            online = await queue.online_counsellors(session)
            case = await session.get(Case, case_id)
            place = await self._place(case_id)
            case.last_position = place.position
            await session.commit()
        if not hours.open_at(utcnow()):
            return self._say("utter_handoff_closed_hours", language, case, hours=hours.spec)
        if online == 0:
            return self._say("utter_handoff_nobody_online", language, case)
        return self._say(
            "utter_handoff_queued", language, case, position=place.position, minutes=place.minutes
        )

    async def announce(self, exclude: int | None = None) -> None:
        """Tells every waiting child whose place changed their new place. Replicas may announce
        at once: the one whose conditional UPDATE moves `last_position` tells the child."""
        async with self._sessions() as session:
            line = await queue.ordered(session)
            online = await queue.online_counsellors(session)
            per_case = await queue.recent_wait_minutes(
                session, self._settings.handoff_minutes_per_case
            )
            changed = []
            for position, case in enumerate(line, start=1):
                before = case.last_position
                if before == position:
                    continue
                moved = await session.execute(
                    update(Case)
                    .where(Case.id == case.id, Case.last_position == before)
                    .values(last_position=position)
                    .execution_options(synchronize_session=False)
                )
                await session.commit()  # one row locked at a time: replicas cannot deadlock
                if moved.rowcount == 1 and case.id != exclude and before is not None:
                    changed.append((case, position))
        for case, position in changed:
            minutes = queue.estimate_minutes(position, per_case, online)
            await self._tell(case, "utter_handoff_queue_update", position=position, minutes=minutes)

    async def _requeued(self, case: Case) -> None:
        place = await self._place(case.id)
        async with self._sessions() as session:
            fresh = await session.get(Case, case.id)
            fresh.last_position = place.position
            await session.commit()
        await self._tell(case, "utter_handoff_requeued", position=place.position)

    async def _tell(self, case: Case, response: str, **values: Any) -> None:
        language = self._language(case)
        await self._relay.send(
            case.conversation_id, "system", [self._say(response, language, case, **values)]
        )

    def _language(self, case: Case) -> str:
        language = json.loads(case.summary or "{}").get("language")
        return language if language in self._locales.languages else self._settings.default_language

    def _summary_message(self, response: str, case: Case, language: str) -> Outgoing:
        text = summary_text(self._locales, json.loads(case.summary), case.child_note, language)
        days = self._settings.retention_days  # "who reads it and how long it is kept"
        return self._say(response, language, case, summary=text, days=days)

    def _say(
        self, response: str, language: str, case: Case | None = None, **values: Any
    ) -> Outgoing:
        """A sentence for this child: their age band and role pick the variant, as in Rasa's."""
        summary = json.loads(case.summary or "{}") if case is not None else {}
        context = {"age_band": summary.get("age_band"), "role": summary.get("role")}
        return self._locales.say(response, language, context, values)
