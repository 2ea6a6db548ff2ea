"""Gateway tables. Users appear only as keyed hashes; see bot/identity.py."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class Conversation(Base):
    """One user on one channel; `mode` says whether the bot or a person answers."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("user_key", name="uq_conversations_user_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_key: Mapped[str] = mapped_column(String(64), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    language: Mapped[str | None] = mapped_column(String(8))
    mode: Mapped[str] = mapped_column(String(16), nullable=False, default="bot")
    # Where replies can be pushed (LINE user id, Telegram chat id), encrypted: bot/address.py.
    address: Mapped[str | None] = mapped_column(Text)
    # The user blocked or left the bot: nothing may be pushed to them any more.
    unreachable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", order_by="Message.id"
    )


class Message(Base):
    """A message in or out; `sender` is user, bot, fallback, counsellor or system (handoff
    notices). `id` is the cursor the web chat fetches later messages by."""

    __tablename__ = "messages"
    # What is still to be pushed, found without reading every message (bot/handoff/relay.py).
    __table_args__ = (
        Index(
            "ix_messages_push_pending",
            "conversation_id",
            "id",
            sqlite_where=text("push_pending"),
            postgresql_where=text("push_pending"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True, nullable=False
    )
    sender: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="text")
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # The buttons sent with an outgoing message (JSON), so a message fetched later keeps them.
    buttons: Mapped[str | None] = mapped_column(Text)
    # A message the gateway must still push (LINE, Telegram): set until the platform accepted it,
    # so a failed push or a gateway restart loses nothing (bot/handoff/relay.py retries).
    push_pending: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Inbound(Base):
    """Every accepted event (LINE, Telegram, web chat), written before the platform's 200: the
    durable inbox (bot/inbox.py). The unique key drops a redelivery, also after a restart.

    `payload` holds what answering needs (the words, the platform's ids, a reply token) sealed
    with the address key (bot/address.py), and only until the row is finished. A worker owns the
    row while `lease_until` is ahead and `claim` is its token; `attempts` counts the claims, so a
    row that keeps failing gets the fail-safe answer. `answer` is a web chat's reply when the row
    was answered somewhere other than where its request waits."""

    __tablename__ = "inbound"
    __table_args__ = (
        UniqueConstraint("channel", "event_id", name="uq_inbound_event"),
        # The oldest unfinished row of each user, found without reading the finished ones.
        Index(
            "ix_inbound_unfinished",
            "user_key",
            "id",
            sqlite_where=text("finished_at IS NULL"),
            postgresql_where=text("finished_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    event_id: Mapped[str] = mapped_column(String(128), nullable=False)
    user_key: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    payload: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claim: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answer: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, nullable=False
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PushCount(Base):
    """Pushes sent per channel and month: LINE bills pushes, replies are free."""

    __tablename__ = "push_counts"
    __table_args__ = (UniqueConstraint("channel", "month", name="uq_push_counts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    month: Mapped[str] = mapped_column(String(7), nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class TelegramMessageId(Base):
    """The id (never the text) of a message in a Telegram private chat, the child's or the bot's,
    so /clear can delete the conversation from a shared phone. Telegram lets bots delete messages
    for 48 hours only, so older rows serve nothing and are removed at the next /clear or /forget."""

    __tablename__ = "telegram_message_ids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_key: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    message_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
