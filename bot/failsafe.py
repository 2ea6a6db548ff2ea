"""While Rasa cannot answer: the fail-safe's "talk to a person" button.

Rasa normally builds the handoff request (actions/conversation.py `handoff_summary`). Without it,
the gateway builds the same request from what it knows itself: the conversation's language. What
Rasa had learnt (age band, topics, routes given) is not guessed; the counsellor who takes the case
reads the child's words in the transcript.
"""

from __future__ import annotations

from typing import Any

PERSON = "/talk_to_human"  # the payload of the fail-safe's button (locales: b_person)


def handoff_summary(language: str) -> dict[str, Any]:
    """The request Rasa would build, with only what the gateway knows: the language. The child's
    words are not put in it (the summary holds only what the child is shown and approves); the
    counsellor who takes the case reads them in the transcript."""
    return {
        "language": language,
        "role": None,
        "age_band": None,
        "topics": [],
        "urgent": False,
        "routes_given": [],
    }
