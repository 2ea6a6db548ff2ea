"""The child's side of the handoff: the offer, consent, the child's messages while a case is
open, and the answer to "did this help?"."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff import cases
from bot.handoff.notices import Notices
from bot.handoff.summary import MAX_NOTE_CHARS
from bot.message import Outgoing
from bot.store.handoff_models import Case
from bot.store.models import Conversation, utcnow

AGREE = "/handoff_agree"
CANCEL = "/handoff_cancel"
HELPED = {"/handoff_helped_yes": True, "/handoff_helped_no": False}


class ChildSide(Notices):
    """Called by the router (bot/router.py)."""

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
