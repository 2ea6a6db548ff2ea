"""What the actions read from a conversation: the latest message's topic and signals, and slots."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Tracker

from components.topics import topic_of

RECENT_WORDS = 3


def safety(tracker: Tracker) -> Dict[str, Any]:
    """The safety net's decision for the latest message (components/safety_net.py)."""
    latest = tracker.latest_message or {}
    intent = (latest.get("intent") or {}).get("name")
    return latest.get("safety") or {"urgent": False, "kind": None, "topic": topic_of(intent)}


def entity(tracker: Tracker, name: str) -> str | None:
    """An entity of the latest message only: a route asked about earlier must not stick."""
    for found in (tracker.latest_message or {}).get("entities") or []:
        if found.get("entity") == name:
            return found.get("value")
    return None


def appended(tracker: Tracker, slot: str, *values: str) -> List[str]:
    current = list(tracker.get_slot(slot) or [])
    return current + [v for v in values if v and v not in current]


def recent_words(tracker: Tracker) -> List[str]:
    """The user's own last messages, for the counsellor; button presses are not words."""
    texts = [
        e.get("text") or ""
        for e in tracker.events
        if e.get("event") == "user" and not (e.get("text") or "").startswith("/")
    ]
    return [t for t in texts if t.strip()][-RECENT_WORDS:]


def handoff_summary(tracker: Tracker, urgent: bool) -> Dict[str, Any]:
    """The handoff request's summary: what the counsellor sees, and the child is shown first."""
    return {
        "language": tracker.get_slot("language"),
        "role": tracker.get_slot("role") or "child",
        "age_band": tracker.get_slot("age_band"),
        "topics": list(tracker.get_slot("topics") or []),
        "urgent": bool(urgent or tracker.get_slot("urgent")),
        "routes_given": list(tracker.get_slot("routes_given") or []),
        "recent_words": recent_words(tracker),
    }
