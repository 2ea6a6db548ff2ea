"""The handoff as the child and the counsellors live it: offer, consent, queue, relay, close.

The router calls `request` when Rasa asks for a person and `from_child` for every message while a
case is open; the console calls the counsellor actions. Everything the child is told comes from
locales/ in the child's language; everything that changes a case is recorded and announced.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.config import Settings
from bot.handoff.categories import Categories
from bot.handoff.child import HELPED, ChildSide
from bot.handoff.counsellors import CounsellorActions
from bot.handoff.events import Events
from bot.handoff.notices import Notices
from bot.handoff.refusals import AtLimit, Changed, NotAllowed
from bot.handoff.relay import Relay
from bot.handoff.timers import Timers
from bot.locales import Locales

__all__ = ["HELPED", "AtLimit", "Changed", "Handoff", "NotAllowed"]


class Handoff(ChildSide, CounsellorActions, Timers, Notices):
    """The whole handoff, one object per gateway: the child's side (child.py), counsellor actions
    (counsellors.py), the no-answer timers (timers.py) and what the child is told (notices.py)."""

    def __init__(
        self,
        sessions: async_sessionmaker,
        locales: Locales,
        settings: Settings,
        relay: Relay,
        events: Events,
    ) -> None:
        self._sessions = sessions
        self._locales = locales
        self._settings = settings
        self._relay = relay
        self.events = events
        self.categories = Categories(locales.directory / "categories.yml")
