"""What counsellors do to a case from the console: claim, assign, reply, note, transfer, close.
Each asks the policy (bot/console/policy.py) again inside the transaction that changes the case."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console import policy
from bot.handoff import cases, voice
from bot.handoff.categories import CategoryError
from bot.handoff.notices import Notices
from bot.handoff.refusals import AtLimit, Changed, NotAllowed
from bot.message import Outgoing
from bot.store.handoff_models import Case, CaseCategory, CaseNote, Counsellor

MAX_REPLY_CHARS = 4000


class CounsellorActions(Notices):
    """Called by the console (bot/console/routes.py)."""

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
