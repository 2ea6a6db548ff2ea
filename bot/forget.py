"""Delete my data: one flow for every channel, decided here and used by the router.

The child asks (`/forget`: Telegram's command, LINE's rich-menu tile, the web chat's link, or just
typed), is told what will go, and answers with a button. Only a *pressed* "yes"
(`/forget_confirmed`) erases: the conversation, its messages and cases, Telegram's message ids and
Rasa's tracker (bot/store/retention.py). A "yes" typed rather than pressed only asks again, so
nothing is deleted by accident. None of these payloads reaches Rasa or a counsellor.

An open handoff case goes with the rest, because it is the child's to erase: the question says so
first, open consoles are told to reload (the case is gone from them), and the audit log records
that the child erased it, without any text, so counsellors know why the chat disappeared.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.handoff import cases
from bot.handoff.events import Events
from bot.locales import Locales
from bot.message import Button, Incoming, Outgoing
from bot.store.handoff_models import Case
from bot.store.models import Conversation
from bot.store.retention import Retention

log = logging.getLogger(__name__)

ASK = "/forget"
CONFIRMED = "/forget_confirmed"
KEEP = "/keep"  # also the "no" under Telegram's /clear question: the same answer fits both
PAYLOADS = (ASK, CONFIRMED, KEEP)


def wanted(text: str) -> bool:
    """A payload of this flow: answered here, never by Rasa or a counsellor."""
    return text in PAYLOADS


def erases(incoming: Incoming, text: str) -> bool:
    """Only the "yes" button, pressed, deletes anything."""
    return text == CONFIRMED and incoming.pressed


class Forget:
    def __init__(
        self,
        sessions: async_sessionmaker,
        locales: Locales,
        retention: Retention,
        events: Events,
    ) -> None:
        self._sessions = sessions
        self._locales = locales
        self._retention = retention
        self._events = events

    def answer(self, text: str, language: str, channel: str, handoff_open: bool) -> Outgoing:
        """The question with its two buttons (for /forget, and for a "yes" that was typed), or
        "nothing was deleted" for "keep". With a case open the question says the counsellor's
        chat ends too."""
        if text == KEEP:
            return self._locales.say("utter_nothing_deleted", language, {"channel": channel})
        name = "utter_forget_confirm_handoff" if handoff_open else "utter_forget_confirm"
        buttons = (
            Button(self._locales.text("ui_button_forget", language), CONFIRMED),
            Button(self._locales.text("ui_button_keep", language), KEEP),
        )
        return replace(self._locales.say(name, language, {"channel": channel}), buttons=buttons)

    def done(self, language: str, channel: str) -> Outgoing:
        """What the child reads once everything is gone."""
        return self._locales.say("utter_forgotten", language, {"channel": channel})

    async def erase(self, user_key: str, channel: str) -> bool:
        """Erases everything kept about this user; their open case goes too, and is audited.
        True when a case left the queue or a console, so the children behind it move up."""
        async with self._sessions() as session:
            open_cases = list(
                await session.scalars(
                    select(Case.id)
                    .join(Conversation, Case.conversation_id == Conversation.id)
                    .where(Conversation.user_key == user_key, Case.state.in_(cases.OPEN_STATES))
                )
            )
        await self._retention.forget(user_key)
        if open_cases:
            async with self._sessions() as session:
                for case_id in open_cases:
                    cases.audit(session, None, "erased", case_id, "at the child's request")
                await session.commit()
            for case_id in open_cases:
                self._events.changed(case_id)
        log.info("a %s user's data was deleted at their request", channel)
        return bool(open_cases)
