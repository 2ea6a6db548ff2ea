"""What is kept and for how long (docs/PRIVACY.md): old words are purged, a user can erase all.

The gateway's own tables and Rasa's SQL tracker store both hold a child's words, so both are
purged and both are erased on request. Closed handoff cases keep their wrap-up record (category,
times, urgency) for reporting, without any text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.store import exclusive, inbound
from bot.store.conversations import forget
from bot.store.handoff_models import Case, CaseNote, Transition
from bot.store.models import Conversation, Message, TelegramMessageId, utcnow

log = logging.getLogger(__name__)

# Rasa's SQLTrackerStore: one row per event, keyed by the sender (our hashed user key).
_TRACKER_DELETE = "DELETE FROM events WHERE sender_id = :sender"
_TRACKER_PURGE = "DELETE FROM events WHERE timestamp < :before"


@dataclass(frozen=True)
class Retention:
    sessions: async_sessionmaker
    tracker: AsyncEngine | None
    days: int

    async def purge(self, now: datetime | None = None) -> dict[str, int]:
        """Deletes words older than the retention period; returns how many rows went."""
        before = (now or utcnow()) - timedelta(days=self.days)
        counts: dict[str, int] = {}
        idle = (
            Conversation.updated_at < before,
            Conversation.mode == "bot",
            ~exists().where(Message.conversation_id == Conversation.id),
        )
        async with self.sessions() as session:
            # One replica at a time, Rasa's events included (bot/store/exclusive.py): the next
            # finds nothing left to purge.
            await exclusive.wait_for(session, exclusive.RETENTION)
            rasa_events = await self._tracker(_TRACKER_PURGE, before=before.timestamp())
            for name, statement in (
                ("messages", delete(Message).where(Message.created_at < before)),
                ("notes", delete(CaseNote).where(CaseNote.created_at < before)),
                (
                    "cases",
                    update(Case)
                    .where(Case.state == "closed", Case.closed_at < before)
                    .where((Case.summary != "{}") | Case.child_note.is_not(None))
                    .values(summary="{}", child_note=None),
                ),
                (
                    "transition_notes",
                    update(Transition)
                    .where(Transition.at < before, Transition.note.is_not(None))
                    .values(note=None),
                ),
                ("inbound", inbound.purge_before(before)),
                (
                    "telegram_ids",
                    delete(TelegramMessageId).where(TelegramMessageId.sent_at < before),
                ),
                (
                    "conversations",
                    delete(Conversation).where(
                        *idle,
                        ~exists().where(Case.conversation_id == Conversation.id),
                    ),
                ),
                (
                    # kept only for their cases' wrap-up records: no longer reachable
                    "addresses",
                    update(Conversation)
                    .where(*idle, Conversation.address.is_not(None))
                    .values(address=None),
                ),
            ):
                counts[name] = (await session.execute(statement)).rowcount or 0
            await session.commit()
        counts["rasa_events"] = rasa_events
        log.info("retention purge: %s", counts)
        return counts

    async def forget(self, user_key: str) -> None:
        """Erases one user everywhere: conversation, messages, cases, what the inbox kept,
        Rasa's tracker."""
        async with self.sessions() as session:
            await inbound.forget(session, user_key)
            await session.execute(
                delete(TelegramMessageId).where(TelegramMessageId.user_key == user_key)
            )
            await forget(session, user_key)
            await session.commit()
        await self._tracker(_TRACKER_DELETE, sender=user_key)

    async def _tracker(self, statement: str, **values: object) -> int:
        if self.tracker is None:
            return 0
        try:
            async with self.tracker.begin() as connection:
                return (await connection.execute(text(statement), values)).rowcount or 0
        except DBAPIError as exc:  # no events table yet: Rasa has not stored anything
            log.warning("Rasa tracker store not purged (%s)", type(exc).__name__)
            return 0
