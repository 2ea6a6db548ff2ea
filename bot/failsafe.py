"""While Rasa cannot answer: the fail-safe's "talk to a person" button, and the child's language.

Rasa normally builds the handoff request (actions/conversation.py `handoff_summary`). Without it,
the gateway builds the same request from what it knows itself: the conversation's language and the
child's recent words as stored here. What Rasa had learnt (age band, topics, routes given) is not
guessed; the counsellor reads the whole transcript in the console anyway.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.language import detect
from bot.store.models import Conversation, Message

PERSON = "/talk_to_human"  # the payload of the fail-safe's button (locales: b_person)
RECENT_WORDS = 3  # as many as Rasa's summary carries


async def handoff_summary(
    sessions: async_sessionmaker, conversation_id: int, language: str
) -> dict[str, Any]:
    async with sessions() as session:
        texts = await session.scalars(
            select(Message.text)
            .where(
                Message.conversation_id == conversation_id,
                Message.sender == "user",
                Message.kind == "text",
                ~Message.text.startswith("/"),
            )
            .order_by(Message.id.desc())
            .limit(RECENT_WORDS)
        )
        recent = [t for t in texts if t.strip()][::-1]
    return {
        "language": language,
        "role": None,
        "age_band": None,
        "topics": [],
        "urgent": False,
        "routes_given": [],
        "recent_words": recent,
    }


async def remember_language(
    sessions: async_sessionmaker, conversation: Conversation, text: str
) -> None:
    """Keeps the language a child writes in while only the fail-safe answers, so the next button
    they press (the fail-safe's own, which says nothing of a language) is answered in it too.
    Normally bot/nlg.py records it from Rasa's slot; what Rasa knew is never overwritten."""
    written = None if text.startswith("/") else detect(text)
    if conversation.language is not None or written is None:
        return
    async with sessions() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id, Conversation.language.is_(None))
            .values(language=written)
        )
        await session.commit()
