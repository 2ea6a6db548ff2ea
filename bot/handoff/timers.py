"""No answer in time: the counsellor is reminded, then the chat goes back to the queue."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.handoff import cases
from bot.handoff.notices import Notices
from bot.store.handoff_models import Case
from bot.store.models import as_utc, utcnow


class Timers(Notices):
    """Run by every gateway replica (bot/app.py); each step is a conditional UPDATE."""

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
