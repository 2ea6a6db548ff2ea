"""While Rasa cannot answer: the fail-safe's "talk to a person" button, and the child's language.

Rasa normally builds the handoff request (actions/conversation.py `handoff_summary`). Without it,
the gateway builds the same request from what it knows itself: the conversation's language. What
Rasa had learnt (age band, topics, routes given) is not guessed; the counsellor who takes the case
reads the child's words in the transcript.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.language import detect
from bot.store.models import Conversation

PERSON = "/talk_to_human"  # the payload of the fail-safe's button (locales: b_person)


def handoff_summary(language: str) -> dict[str, Any]:
    """The request Rasa would build, with only what the gateway knows: the language. The child's
    words are not put in it (the summary holds only what the child is shown and approves); the
    counsellor who takes the case reads them in the transcript."""
    return {
        "language": language,
        "role": None,
        "age_band": None,
        "topics": [],
        "urgent": False,
        "routes_given": [],
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
