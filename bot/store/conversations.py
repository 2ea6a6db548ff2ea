"""Finding a user's conversation, safe when two first messages race."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.models import Conversation, Message


async def get_or_create(session: AsyncSession, user_key: str, channel: str) -> Conversation:
    """The conversation for this user, created and committed on first contact (so a reader need
    not commit, one step less on every turn); the unique key settles races."""
    query = select(Conversation).where(Conversation.user_key == user_key)
    found = await session.scalar(query)
    if found is not None:
        return found
    try:
        async with session.begin_nested():
            found = Conversation(user_key=user_key, channel=channel, mode="bot")
            session.add(found)
        await session.commit()
    except IntegrityError:
        found = await session.scalar(query)
    return found


async def forget(session: AsyncSession, user_key: str) -> None:
    """Deletes the user's conversation and its messages, on the user's own request.
    (Rasa's tracker of the same sender is not deleted here yet.)"""
    ids = select(Conversation.id).where(Conversation.user_key == user_key)
    await session.execute(delete(Message).where(Message.conversation_id.in_(ids)))
    await session.execute(delete(Conversation).where(Conversation.user_key == user_key))
