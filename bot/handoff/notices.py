"""What the child is told about the queue and the case: their place, changes of it, and every
sentence in the child's language and variant (locales/)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.config import Settings
from bot.handoff import queue
from bot.handoff.categories import Categories
from bot.handoff.events import Events
from bot.handoff.relay import Relay
from bot.handoff.summary import summary_text
from bot.locales import Locales
from bot.message import Outgoing
from bot.store.handoff_models import Case
from bot.store.models import utcnow


@dataclass(frozen=True)
class Place:
    position: int
    minutes: int


class Notices:
    """Shared by the handoff's other parts; the attributes are set by Handoff (service.py)."""

    _sessions: async_sessionmaker
    _locales: Locales
    _settings: Settings
    _relay: Relay
    events: Events
    categories: Categories

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
