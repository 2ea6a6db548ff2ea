"""A turn's own records (bot/router.py): the child's words in, the answer out. Each is one step
(bot/store/steps.py) on every turn's path, so each is a handful of Core statements in one
transaction, without an ORM session."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.handoff.relay import buttons_json
from bot.message import Outgoing
from bot.store.models import Conversation, Message

# Built once: building a statement costs more than running it (bot/store/inbound.py).
_FIND = select(Conversation.id, Conversation.mode, Conversation.language).where(
    Conversation.user_key == bindparam("b_user")
)
_WORDS = insert(Message)
_SAID = insert(Message).returning(Message.id)
_ADOPT = (
    update(Conversation)
    .where(Conversation.id == bindparam("b_id"), Conversation.language.is_(None))
    .values(language=bindparam("b_language"))
)
_MODE = select(Conversation.mode, Conversation.language).where(Conversation.id == bindparam("b_id"))
_KNOWN = select(Conversation.language).where(Conversation.user_key == bindparam("b_user"))
_KEEP = (
    update(Conversation)
    .where(
        Conversation.user_key == bindparam("b_user"),
        Conversation.language.is_distinct_from(bindparam("b_language")),
    )
    .values(language=bindparam("b_language"))
)


@dataclass(frozen=True)
class Opened:
    """The child's conversation as the turn found it: `language` is the one known before these
    words (bot/language.py decides the reply's)."""

    id: int
    mode: str
    language: str | None


@dataclass(frozen=True)
class Closed:
    """The answer's rows (their ids are the web chat's cursors) and the conversation after it."""

    ids: list[int]
    mode: str
    language: str | None


def open_turn(
    connection: Connection,
    user_key: str,
    channel: str,
    kind: str,
    text: str,
    heard: str | None,
) -> Opened:
    """Finds the user's conversation, or creates it on first contact (the unique key settles two
    first messages racing); writes the child's words; and makes `heard`, the language they are
    written in, the conversation's when it has none yet, so what is answered without Rasa's /nlg
    (a handoff's words, the fail-safe, a button) is in it too. A language already known is never
    overwritten here: bot/nlg.py keeps it current."""
    found = _conversation(connection, user_key)
    if found is None:
        insert_ = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[
            connection.dialect.name
        ]
        connection.execute(
            insert_(Conversation)
            .values(user_key=user_key, channel=channel, mode="bot")
            .on_conflict_do_nothing(index_elements=["user_key"])
        )
        found = _conversation(connection, user_key)
    opened = Opened(id=found.id, mode=found.mode, language=found.language)
    connection.execute(
        _WORDS, {"conversation_id": opened.id, "sender": "user", "kind": kind, "text": text}
    )
    if opened.language is None and heard is not None:
        connection.execute(_ADOPT, {"b_id": opened.id, "b_language": heard})
    return opened


def close_turn(
    connection: Connection, conversation_id: int, sender: str, messages: list[Outgoing]
) -> Closed:
    """Writes what `sender` said to the child, in order, and reads the conversation's mode and
    language after it (a handoff asked for in this turn changed the mode)."""
    ids = [
        connection.execute(
            _SAID,
            {
                "conversation_id": conversation_id,
                "sender": sender,
                "text": message.text,
                "buttons": buttons_json(message),
            },
        ).scalar_one()
        for message in messages
    ]
    mode, language = connection.execute(_MODE, {"b_id": conversation_id}).one()
    return Closed(ids=ids, mode=mode, language=language)


def known_language(connection: Connection, user_key: str) -> str | None:
    """The language the conversation is known to be in (None: not yet, or no conversation)."""
    return connection.scalar(_KNOWN, {"b_user": user_key})


def keep_language(connection: Connection, user_key: str, language: str) -> None:
    """Makes `language` the conversation's (bot/nlg.py: so a fallback sent while Rasa is down
    matches it)."""
    connection.execute(_KEEP, {"b_user": user_key, "b_language": language})


def _conversation(connection: Connection, user_key: str):  # noqa: ANN202 (a Row)
    return connection.execute(_FIND, {"b_user": user_key}).first()
