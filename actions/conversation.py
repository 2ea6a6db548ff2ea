"""What the actions read from a conversation: the latest message's topic and signals, and slots."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Tracker

from components import lexicon
from components.topics import DISCLOSURE_TOPICS, topic_of

# A request for a person that also tells what happened ("พ่อเลี้ยงจับตัวหนู… ขอคุยกับคนจริง ๆ")
# is classified as the request; the situation still shows in the ranking, at least this sure.
TOLD_TOO_MIN_CONFIDENCE = 0.05


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


def asks_for_person(tracker: Tracker) -> bool:
    """The latest message also asks for a person ("… can I talk to someone"), whatever its topic:
    the reviewed list in components/lexicon/person.yml, not a guess of the classifier."""
    text = (tracker.latest_message or {}).get("text") or ""
    return not text.startswith("/") and lexicon.load("person")["person"].search(text) is not None


def told_too(tracker: Tracker) -> str | None:
    """The situation a typed request for a person also tells, if the classifier saw one."""
    latest = tracker.latest_message or {}
    if (latest.get("text") or "").startswith("/"):
        return None
    for ranked in latest.get("intent_ranking") or []:
        topic = topic_of(ranked.get("name"))
        if topic in DISCLOSURE_TOPICS and ranked.get("confidence", 0) >= TOLD_TOO_MIN_CONFIDENCE:
            return topic
    return None


def appended(tracker: Tracker, slot: str, *values: str) -> List[str]:
    current = list(tracker.get_slot(slot) or [])
    return current + [v for v in values if v and v not in current]


def handoff_summary(tracker: Tracker, urgent: bool, **known: Any) -> Dict[str, Any]:
    """The handoff request's summary: what the counsellor sees, and the child is shown first.

    Only facts the child is shown and approves go in it (docs/PRIVACY.md): never their words, which
    a counsellor reads in the transcript once the case is theirs. `known` overrides slots this
    turn has just changed."""
    summary = {
        "language": tracker.get_slot("language"),
        "role": tracker.get_slot("role") or "child",
        "age_band": tracker.get_slot("age_band"),
        "topics": list(tracker.get_slot("topics") or []),
        "urgent": bool(urgent or tracker.get_slot("urgent")),
        "routes_given": list(tracker.get_slot("routes_given") or []),
    }
    summary.update(known)
    return summary
