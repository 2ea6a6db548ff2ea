"""The custom actions, run on real rasa_sdk trackers and dispatchers."""

from __future__ import annotations

from pathlib import Path

import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.guidance import ActionGuidance
from actions.person import ActionAnswer, ActionOfferPerson
from actions.routes import ActionRoutes
from actions.urgent import ActionUrgent
from components.topics import TOPIC_OF_INTENT

ROOT = Path(__file__).resolve().parents[2]


def tracker(
    intent: str,
    text: str = "",
    slots: dict | None = None,
    safety: dict | None = None,
    entities: list | None = None,
    events: list | None = None,
) -> Tracker:
    latest = {"intent": {"name": intent}, "text": text, "entities": entities or []}
    if safety:
        latest["safety"] = safety
    return Tracker("user-1", slots or {}, latest, events or [], False, None, {}, "action_listen")


def run(action, state: Tracker) -> tuple[list[dict], dict]:
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, state, {})
    return dispatcher.messages, {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def responses(messages: list[dict]) -> list[str]:
    return [m["response"] for m in messages if m.get("response")]


def test_guidance_opens_with_not_your_fault_then_steps_then_routes_then_asks_age_once():
    safety = {"urgent": False, "kind": None, "topic": "sextortion"}
    messages, slots = run(ActionGuidance(), tracker("sextortion", safety=safety))
    assert responses(messages) == [
        "utter_sextortion_first",
        "utter_sextortion_steps",
        "utter_sextortion_routes",
        "utter_ask_age",
    ]
    assert slots["topics"] == ["sextortion"] and "ticac" in slots["routes_given"]
    assert slots["pending"] == "age"

    again, _ = run(
        ActionGuidance(), tracker("sextortion", safety=safety, slots={"age_asked": True})
    )
    assert "utter_ask_age" not in responses(again)


def test_caregivers_are_not_asked_their_age():
    safety = {"urgent": False, "kind": None, "topic": "grooming"}
    messages, _ = run(
        ActionGuidance(), tracker("grooming", safety=safety, slots={"role": "caregiver"})
    )
    assert "utter_ask_age" not in responses(messages)


def test_urgent_answers_and_requests_a_person_with_a_summary():
    events = [
        {"event": "user", "text": "he has my video"},
        {"event": "user", "text": "/affirm"},
        {"event": "user", "text": "i want to die"},
    ]
    state = tracker(
        "self_harm",
        text="i want to die",
        slots={"language": "en", "topics": ["sextortion"]},
        safety={"urgent": True, "kind": "self_harm", "topic": "sextortion"},
        events=events,
    )
    messages, slots = run(ActionUrgent(), state)
    assert responses(messages) == ["utter_urgent_self_harm"]
    handoff = next(m["custom"]["handoff"] for m in messages if m.get("custom"))
    assert handoff["urgent"] is True and handoff["language"] == "en"
    assert handoff["topics"] == ["sextortion", "self_harm"]
    assert handoff["recent_words"] == ["he has my video", "i want to die"]
    assert "mental_health_1323" in handoff["routes_given"]
    assert slots["urgent"] is True and slots["pending"] == "person"


def test_yes_after_the_offer_requests_a_person_and_yes_otherwise_does_not():
    _, slots = run(ActionOfferPerson(), tracker("talk_to_human"))
    assert slots == {"pending": "person"}
    messages, _ = run(ActionAnswer(), tracker("affirm", slots={"pending": "person"}))
    assert messages[0]["custom"]["handoff"]["urgent"] is False
    messages, _ = run(ActionAnswer(), tracker("deny", slots={"pending": "person"}))
    assert responses(messages) == ["utter_person_declined"]
    messages, _ = run(ActionAnswer(), tracker("affirm"))
    assert responses(messages) == ["utter_anything_else"]


def test_routes_answer_the_route_or_question_asked_or_fit_the_topic():
    named = [{"entity": "route", "value": "saidek_1387"}]
    assert responses(run(ActionRoutes(), tracker("report_help", entities=named))[0]) == [
        "utter_route_saidek_1387"
    ]
    asked = [{"entity": "question", "value": "evidence"}]
    assert responses(run(ActionRoutes(), tracker("report_help", entities=asked))[0]) == [
        "utter_keep_evidence"
    ]
    after = tracker("report_help", slots={"topics": ["grooming"]})
    assert responses(run(ActionRoutes(), after)[0]) == ["utter_grooming_routes"]
    assert responses(run(ActionRoutes(), tracker("report_help"))[0]) == ["utter_routes_overview"]


def test_every_domain_intent_maps_to_a_topic():
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    assert set(domain["intents"]) == set(TOPIC_OF_INTENT)
