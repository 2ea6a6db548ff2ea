"""Messages to a child outside a reply: counsellor words and queue updates, on the child's channel.

Every such message is stored first (the web chat fetches it by cursor); LINE and Telegram users
also get it pushed through their channel, to the sealed address the adapter keeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.message import Button, Outgoing
from bot.store import exclusive
from bot.store.models import Conversation, Message

log = logging.getLogger(__name__)


class Pushes(Protocol):
    async def push(self, user: str, replies: list[Outgoing], key: str) -> bool:
        """Pushes to a user known by key; `key` names the outbox row, the same at every retry,
        so the platform can drop a copy it already has (LINE's X-Line-Retry-Key)."""


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
    """At-least-once, in-order delivery of pushed messages: each is stored marked pending and
    unmarked once the platform accepts it; a message is never pushed ahead of an older pending
    one, and `retry` (run periodically, and so also after a restart) sends what is left."""

    def __init__(self, sessions: async_sessionmaker, channels: Mapping[str, Any]) -> None:
        self._sessions = sessions
        self._channels = channels
        # One lock per conversation being flushed; gone once nobody holds it.
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    async def send(self, conversation_id: int, sender: str, messages: list[Outgoing]) -> bool:
        """Stores, then pushes where the channel can; False when it is left for `retry`."""
        if not messages:
            return True
        async with self._sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                return False
            rows = stored(conversation_id, sender, messages)
            pushed = conversation.channel in self._channels
            for row in rows:
                row.push_pending = pushed
            session.add_all(rows)
            await session.commit()
        if not pushed:
            return True  # the web chat fetches it
        return await self._flush(conversation_id)

    async def later(self, user_key: str, messages: list[Outgoing]) -> bool:
        """Replies a channel could not send at once, pushed from the outbox: those already stored
        (a `cursor`) are marked pending, the others are stored so; then they are pushed in order."""
        async with self._sessions() as session:
            conversation = await session.scalar(
                select(Conversation).where(Conversation.user_key == user_key)
            )
            if conversation is None:
                return False
            cursors = [m.cursor for m in messages if m.cursor is not None]
            if cursors:
                await session.execute(
                    update(Message)
                    .where(Message.conversation_id == conversation.id, Message.id.in_(cursors))
                    .values(push_pending=True)
                )
            rows = stored(conversation.id, "bot", [m for m in messages if m.cursor is None])
            for row in rows:
                row.push_pending = True
            session.add_all(rows)
            await session.commit()
        return await self._flush(conversation.id)

    async def retry(self) -> None:
        """Pushes every conversation's pending messages, oldest first."""
        async with self._sessions() as session:
            waiting = await session.scalars(
                select(Message.conversation_id).where(Message.push_pending).distinct()
            )
            conversations = list(waiting)
        for conversation_id in conversations:
            await self._flush(conversation_id)

    async def _flush(self, conversation_id: int) -> bool:
        """Pushes this conversation's pending messages in order; stops at the first refusal."""
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        async with lock:
            while True:
                done = await self._push_oldest(conversation_id)
                if done is not None:
                    return done

    async def _push_oldest(self, conversation_id: int) -> bool | None:
        """Pushes the conversation's oldest pending message: None once it went (more may wait),
        True when nothing is pending, False when refused or the user is unreachable.

        The push happens under the conversation's lock in the database (bot/store/exclusive.py)
        and the message is unmarked before the lock goes, so a replica pushing at the same time
        waits, then finds it no longer pending: no child gets a message twice or out of order."""
        async with self._sessions() as session:
            await exclusive.wait_for(session, exclusive.RELAY, conversation_id)
            conversation = await session.get(Conversation, conversation_id)
            pending = (Message.conversation_id == conversation_id, Message.push_pending)
            row = await session.scalar(
                select(Message).where(*pending).order_by(Message.id).limit(1)
            )
            if conversation is None or row is None:
                return True
            if conversation.unreachable:  # blocked: nothing can be pushed, ever
                await session.execute(update(Message).where(*pending).values(push_pending=False))
                await session.commit()
                return False
            channel: Pushes = self._channels[conversation.channel]
            key = f"message:{row.id}"  # the outbox row: the same key at every retry
            if not await channel.push(conversation.user_key, [_outgoing(row)], key):
                log.warning("a push to a %s user failed; retrying later", conversation.channel)
                return False
            row.push_pending = False
            await session.commit()
        return None


def _outgoing(row: Message) -> Outgoing:
    buttons = tuple(Button(**b) for b in json.loads(row.buttons)) if row.buttons else ()
    return Outgoing(text=row.text, buttons=buttons)
