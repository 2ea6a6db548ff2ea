"""Messages to a child outside a reply: counsellor words and queue updates, on the child's channel.

Every such message is stored first (the web chat fetches it by cursor); LINE and Telegram users
also get it pushed through their channel, to the sealed address the adapter keeps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.message import Outgoing
from bot.store.models import Conversation, Message

log = logging.getLogger(__name__)


class Pushes(Protocol):
    async def push(self, user: str, replies: list[Outgoing]) -> bool: ...


def buttons_json(message: Outgoing) -> str | None:
    if not message.buttons:
        return None
    return json.dumps([{"title": b.title, "payload": b.payload} for b in message.buttons])


def stored(conversation_id: int, sender: str, messages: list[Outgoing]) -> list[Message]:
    """The rows that record `messages` as said to the child by `sender`."""
    return [
        Message(
            conversation_id=conversation_id,
            sender=sender,
            text=m.text,
            buttons=buttons_json(m),
        )
        for m in messages
    ]


class Relay:
    def __init__(self, sessions: async_sessionmaker, channels: Mapping[str, Any]) -> None:
        self._sessions = sessions
        self._channels = channels

    async def send(self, conversation_id: int, sender: str, messages: list[Outgoing]) -> bool:
        """Stores, then pushes where the channel can; False when a push did not go out."""
        if not messages:
            return True
        async with self._sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                return False
            session.add_all(stored(conversation_id, sender, messages))
            await session.commit()
        channel: Pushes | None = self._channels.get(conversation.channel)
        if channel is None:
            return True  # the web chat fetches it
        sent = await channel.push(conversation.user_key, messages)
        if not sent:
            log.warning(
                "a %s message to a %s user could not be pushed", sender, conversation.channel
            )
        return sent
