"""The NLG endpoint Rasa calls (endpoints.yml `nlg:`): response name in, sentence from locales out.

Rasa decides *what* to say; this decides *how*, in the conversation's language and for its age band,
role and channel. It also remembers the language, so a fallback sent while Rasa is down matches it;
what it knows of it comes with the words (`KNOWN`), so a sentence costs no database read.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.language import reply_language, written
from bot.store import turns
from bot.untrusted import loads

CONTEXT_SLOTS = ("age_band", "role", "urgent")
# The message metadata the gateway sends each message to Rasa with: the language the gateway's
# row holds for the conversation (None: not yet known), as it was when the words came.
KNOWN = "known_language"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _language_entity(latest: dict[str, Any]) -> str | None:
    for found in latest.get("entities") or []:
        if isinstance(found, dict) and found.get("entity") == "language":
            return _string(found.get("value"))
    return None


def context_of(tracker: dict[str, Any]) -> dict[str, Any]:
    slots = _mapping(tracker.get("slots"))
    context = {name: slots.get(name) for name in CONTEXT_SLOTS}
    context["channel"] = tracker.get("latest_input_channel")
    return context


async def nlg_endpoint(request: Request) -> JSONResponse:
    state = request.app.state
    token = request.query_params.get("token", "")
    if not hmac.compare_digest(token.encode(), state.settings.nlg_token.encode()):
        return JSONResponse({"error": "unauthorised"}, status_code=401)
    try:
        body = loads(await request.body())
        name = str(body["response"])
        tracker = body.get("tracker") or {}
        if not isinstance(tracker, dict):
            raise TypeError("tracker must be an object")
    except (ValueError, KeyError, TypeError, AttributeError):
        return JSONResponse({"error": "malformed request"}, status_code=400)

    # Only Rasa calls this, but a field of an unexpected type is ignored rather than trusted.
    slots = _mapping(tracker.get("slots"))
    latest = _mapping(tracker.get("latest_message"))
    sender = _string(tracker.get("sender_id"))
    told = _mapping(latest.get("metadata"))
    if KNOWN in told:  # sent with the words (bot/router.py): no read for each sentence
        known = _string(told[KNOWN])
    else:
        known = await state.steps.run(turns.known_language, sender) if sender else None
    # The words: as the NLU read them (an explicit "english please" beats the script), else
    # their script; the stored conversation: Rasa's slot, else the gateway's row.
    words = _language_entity(latest) or written(_string(latest.get("text")))
    stored = _string(slots.get("language")) or known
    settings = state.settings
    language = reply_language(
        words, stored, None, settings.default_language, state.locales.languages
    )
    rendered = state.locales.render(name, language, context_of(tracker))
    if rendered is None:
        return JSONResponse({"error": f"unknown response {name}"}, status_code=404)
    if sender and known != language:  # a write on every sentence would queue behind others
        await state.steps.run(turns.keep_language, sender, language)
    body = rendered.as_json()
    return JSONResponse({"text": body["text"], "buttons": body["buttons"]})
