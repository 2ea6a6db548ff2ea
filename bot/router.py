"""Decides who answers a message (Rasa, or a person while a handoff is open); records the turn.

"Delete my data" (bot/forget.py) is answered here, before Rasa or a counsellor, on every channel.
Past capacity a turn may get the holding line first, and its answer later (bot/holding.py).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import async_sessionmaker

from bot import failsafe, forget
from bot.handoff import cases
from bot.handoff.relay import stored
from bot.handoff.service import HELPED, Handoff
from bot.holding import HOLD_MAX_S, Abandoned, Hold, HoldingRate, answered_or_held
from bot.language import reply_language, written
from bot.locales import Locales
from bot.message import Incoming, Outgoing
from bot.nlg import KNOWN
from bot.rasa_client import RasaClient, RasaUnavailable
from bot.ratelimit import RateLimiter
from bot.store import turns
from bot.store.retention import Retention
from bot.store.steps import Steps
from bot.untrusted import valid_text

log = logging.getLogger(__name__)

# Zero-width and other invisible characters that chat apps and keyboards insert.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\s]+")


@dataclass(frozen=True)
class Reply:
    """`forgotten`: the user's data was just erased; the messages are not stored (no cursor),
    and a channel keeping anything of its own (the web chat page) should let it go too.
    `held`: the child already got the holding line (bot/holding.py), so these messages go the
    channel's later way (none: the holding line was the last word)."""

    messages: list[Outgoing]
    mode: str
    language: str
    forgotten: bool = False
    held: bool = False


class Router:
    def __init__(
        self,
        sessions: async_sessionmaker,
        steps: Steps,
        rasa: RasaClient,
        locales: Locales,
        handoff: Handoff,
        default_language: str,
        max_text_chars: int = 2000,
        user_limit: RateLimiter | None = None,
        retention: Retention | None = None,
        hold_after_s: float = 4.0,
        hold_max_s: float = HOLD_MAX_S,
    ) -> None:
        """`hold_after_s` (RASA_TIMEOUT_S) and `hold_max_s`: bot/holding.py."""
        self._sessions = sessions
        self._steps = steps  # a turn's own records (bot/store/turns.py)
        self._rasa = rasa
        self._locales = locales
        self._handoff = handoff
        self._default_language = default_language
        self._max_text_chars = max_text_chars
        self._user_limit = user_limit if user_limit is not None else RateLimiter(0)
        self._hold_after_s = hold_after_s
        self._hold_max_s = hold_max_s
        self.holding = HoldingRate()  # the supervisors' overload banner reads it
        # Without the app's Retention (tests), erasure reaches the gateway's tables only.
        retention = retention or Retention(sessions, None, 0)
        self._forget = forget.Forget(sessions, locales, retention, handoff.events)

    async def handle(self, incoming: Incoming, hold: Hold | None = None) -> Reply:
        """The answer to one message. With `hold`, a turn Rasa has not answered within
        RASA_TIMEOUT_S gets the holding line through it first (bot/holding.py)."""
        text = _INVISIBLE.sub(" ", valid_text(incoming.text)).strip()[: self._max_text_chars]
        if forget.erases(incoming, text):
            return await self._erase(incoming)
        # The child's words are written first, in one step with finding their conversation:
        # before anything may read this turn (a counsellor's console, a handoff summary).
        heard = written(text)
        conversation = await self._steps.run(
            turns.open_turn, incoming.user_key, incoming.channel, incoming.kind, text, heard
        )
        language = self._language(heard, conversation.language, incoming)
        if forget.wanted(text):
            handoff_open = conversation.mode != "bot"
            answer = self._forget.answer(text, language, incoming.channel, handoff_open)
            messages, sender, held = [answer], "bot", False
        else:
            messages, sender, held = await self._answer(
                conversation, incoming, text, language, hold
            )
        closed = await self._steps.run(turns.close_turn, conversation.id, sender, messages)
        return Reply(
            messages=[
                replace(m, cursor=row_id, sender=sender)
                for m, row_id in zip(messages, closed.ids, strict=True)
            ],
            mode=closed.mode,
            language=closed.language or language,
            held=held,
        )

    async def _erase(self, incoming: Incoming) -> Reply:
        """Erases the user's data and says so. Nothing of this turn is stored: the conversation
        it would belong to is gone, and nothing about the child may stay."""
        known = await self._steps.run(turns.known_language, incoming.user_key)
        language = self._language(None, known, incoming)
        if await self._forget.erase(incoming.user_key, incoming.channel):
            await self._handoff.announce()
        done = self._forget.done(language, incoming.channel)
        return Reply(messages=[done], mode="bot", language=language, forgotten=True)

    def _language(self, words: str | None, stored: str | None, incoming: Incoming) -> str:
        return reply_language(
            words, stored, incoming.language, self._default_language, self._locales.languages
        )

    async def _answer(
        self,
        conversation: turns.Opened,
        incoming: Incoming,
        text: str,
        language: str,
        hold: Hold | None,
    ) -> tuple[list[Outgoing], str, bool]:
        """Who answers and what: a person's case while one is open, else Rasa, else the fallback;
        and whether the holding line went first."""
        if conversation.mode != "bot":
            answer = await self._handoff.from_child(conversation.id, text, incoming.kind, language)
            if answer is not None:
                return answer, "system", False
        if incoming.kind != "text" or not text:
            name = (
                f"utter_received_{incoming.kind}"
                if incoming.kind != "text"
                else "utter_empty_message"
            )
            return [self._locales.say(name, language)], "bot", False
        if text in HELPED:  # "did this help?" after a counsellor's chat: the handoff keeps it
            return await self._handoff.helped(conversation.id, text, language), "system", False
        if not self._user_limit.hit(incoming.user_key):  # bot/ratelimit.py: before Rasa only
            return [self._locales.say("utter_rate_limited", language)], "bot", False
        answered, held = await self._from_rasa(conversation, incoming, text, language, hold)
        messages = answered or []
        if answered is None and text == failsafe.PERSON:  # the fallback's button, without Rasa
            summary = failsafe.handoff_summary(language)
            messages = [Outgoing(text="", custom={"handoff": summary})]
        resolved: list[Outgoing] = []
        for message in messages:
            handoff = (message.custom or {}).get("handoff")
            if handoff is None:
                resolved.append(message)
            else:
                resolved += await self._handoff.request(conversation.id, handoff, language)
        resolved = [m for m in resolved if m.text or m.buttons]
        if held and resolved:
            self.holding.answered_later()
        if not resolved and not held:
            return [self._locales.say("utter_fallback", language)], "fallback", False
        return resolved, "bot", held

    async def _from_rasa(
        self,
        conversation: turns.Opened,
        incoming: Incoming,
        text: str,
        language: str,
        hold: Hold | None,
    ) -> tuple[list[Outgoing] | None, bool]:
        """Rasa's answer (None: none came), and whether the holding line went first
        (bot/holding.py). A child in a handoff or once marked urgent goes ahead of every waiting
        turn and is never held, and so does a child asking for a person (the holding line's own
        button); whether they were marked is asked only when there is a queue."""
        first = conversation.mode != "bot" or text == failsafe.PERSON
        if not first and self._rasa.full(incoming.user_key):
            async with self._sessions() as session:
                first = await cases.ever_urgent(session, conversation.id)
        holds = hold is not None and not first
        self.holding.turn()
        held = False

        async def holding_line() -> None:
            nonlocal held
            held = True
            self.holding.held()
            await hold(await self._holding_line(conversation.id, language))

        known = conversation.language or written(text)  # as open_turn left it
        send = self._rasa.send(
            incoming.user_key,
            text,
            incoming.channel,
            {**incoming.metadata, KNOWN: known},
            patience_s=self._hold_max_s if holds else None,
            first=first,
        )
        try:
            if not holds:
                return await send, False
            down = functools.partial(self._rasa.down, incoming.user_key)
            answer = answered_or_held(send, self._hold_after_s, holding_line, down)
            return await answer, held
        except (RasaUnavailable, Abandoned) as exc:
            what = "the holding line was the last word" if held else "answering with the fallback"
            log.warning("rasa unavailable (%s); %s", exc, what)
            return None, held

    async def _holding_line(self, conversation_id: int, language: str) -> list[Outgoing]:
        """The holding line, stored (sender "holding") so the web chat's later messages follow it
        and a counsellor's transcript shows it."""
        line = self._locales.say("utter_holding", language)
        async with self._sessions() as session:
            rows = stored(conversation_id, "holding", [line])
            session.add_all(rows)
            await session.commit()
        return [replace(line, cursor=rows[0].id, sender="holding")]
