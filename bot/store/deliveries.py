"""What platform channels keep to reach a user: the sealed push address, the unreachable flag,
push counts, and Telegram's message ids for /clear. The adapters send; the SQL is here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.address import AddressBook
from bot.store.conversations import get_or_create
from bot.store.models import Conversation, PushCount, TelegramMessageId, as_utc, utcnow


async def remember_address(
    sessions: async_sessionmaker,
    addresses: AddressBook,
    user: str,
    channel: str,
    platform_id: str,
    reachable: bool,
) -> None:
    """Keeps the platform id, sealed, for later pushes; `reachable` (an unblock) clears the
    unreachable flag. Writes only when something changed."""
    async with sessions() as session:
        conversation = await get_or_create(session, user, channel)
        if reachable and conversation.unreachable:
            conversation.unreachable = False
        if not conversation.unreachable and addresses.open(conversation.address) != platform_id:
            conversation.address = addresses.seal(platform_id)
        await session.commit()


async def mark_unreachable(sessions: async_sessionmaker, user: str, channel: str) -> None:
    """The user blocked the bot: never push again, and the address is no longer kept."""
    async with sessions() as session:
        conversation = await get_or_create(session, user, channel)
        conversation.unreachable = True
        conversation.address = None
        await session.commit()


async def push_address(
    sessions: async_sessionmaker, addresses: AddressBook, user: str
) -> str | None:
    """The platform id a push to this user goes to; None when unknown or blocked."""
    async with sessions() as session:
        row = (
            await session.execute(
                select(Conversation.address, Conversation.unreachable).where(
                    Conversation.user_key == user
                )
            )
        ).first()
    if row is None or row.unreachable:
        return None
    return addresses.open(row.address)


async def unreachable(sessions: async_sessionmaker, user: str) -> bool:
    async with sessions() as session:
        return bool(
            await session.scalar(
                select(Conversation.unreachable).where(Conversation.user_key == user)
            )
        )


async def count_push(sessions: async_sessionmaker, channel: str) -> int:
    """Adds one push to this month's count and returns the new total."""
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    where = (PushCount.channel == channel, PushCount.month == month)
    async with sessions() as session:
        done = await session.execute(
            update(PushCount).where(*where).values(count=PushCount.count + 1)
        )
        if done.rowcount == 0:
            session.add(PushCount(channel=channel, month=month, count=1))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                await session.execute(
                    update(PushCount).where(*where).values(count=PushCount.count + 1)
                )
                await session.commit()
        else:
            await session.commit()
        return await session.scalar(select(PushCount.count).where(*where))


async def record_message_ids(
    sessions: async_sessionmaker,
    user: str,
    sent: list[tuple[int, float]],
    deletable_for: timedelta,
) -> None:
    """Keeps Telegram message ids for /clear. Of the ids too old to delete, only the newest is
    kept: it is how /clear knows to tell the child that older messages remain."""
    old = and_(
        TelegramMessageId.user_key == user,
        TelegramMessageId.sent_at < utcnow() - deletable_for,
    )
    newest_old = select(func.max(TelegramMessageId.id)).where(old).scalar_subquery()
    async with sessions() as session:
        session.add_all(
            TelegramMessageId(
                user_key=user,
                message_id=message_id,
                sent_at=datetime.fromtimestamp(at, timezone.utc),
            )
            for message_id, at in sent
        )
        await session.flush()
        await session.execute(
            delete(TelegramMessageId).where(old, TelegramMessageId.id < newest_old)
        )
        await session.commit()


async def take_message_ids(
    sessions: async_sessionmaker, user: str, deletable_for: timedelta
) -> tuple[list[int], bool]:
    """The ids of the user's Telegram messages a bot may still delete, forgotten as they are
    handed out, and whether they are all there were (nothing older stays behind)."""
    cutoff = utcnow() - deletable_for
    mine = TelegramMessageId.user_key == user
    async with sessions() as session:
        rows = (
            await session.execute(
                select(TelegramMessageId.message_id, TelegramMessageId.sent_at).where(mine)
            )
        ).all()
        await session.execute(
            delete(TelegramMessageId).where(mine, TelegramMessageId.sent_at >= cutoff)
        )
        await session.commit()
    fresh = sorted({row.message_id for row in rows if as_utc(row.sent_at) >= cutoff})
    return fresh, len(fresh) == len(rows)
