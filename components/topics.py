"""The one place that says which eval topic each NLU intent belongs to."""

from __future__ import annotations

TOPICS = (
    "sextortion",
    "image_shared",
    "grooming",
    "abuse_disclosure",
    "self_harm",
    "immediate_danger",
    "report_help",
    "talk_to_human",
    "online_safety",
    "other_harm",
    "greeting",
    "other",
)

TOPIC_OF_INTENT = {
    **{topic: topic for topic in TOPICS if topic != "other"},
    "out_of_scope": "other",
    "affirm": "other",
    "deny": "other",
    "thanks": "other",
    "choose_language": "other",
    "provide_age": "other",
    # "do I have to send him the money?": money demanded under threat is sextortion's mark; the
    # dialogue reads it in the conversation's context (actions/guidance.py ActionFollowUp).
    "ask_pay": "sextortion",
}

URGENT_TOPICS = frozenset({"self_harm", "immediate_danger"})

# Topics whose guidance must not be replaced when the safety net also fires: the child gets the
# urgent answer first and the topic's guidance is kept for afterwards.
DISCLOSURE_TOPICS = frozenset(
    {"sextortion", "image_shared", "grooming", "abuse_disclosure", "other_harm"}
)


def topic_of(intent: str | None) -> str:
    return TOPIC_OF_INTENT.get(intent or "", "other")
