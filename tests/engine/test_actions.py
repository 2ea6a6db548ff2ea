"""The custom actions, run on real rasa_sdk trackers and dispatchers."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.guidance import ActionFollowUp, ActionGuidance
from actions.person import ActionAnswer, ActionOfferPerson, ActionRecordAge
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
    ranking: list | None = None,
) -> Tracker:
    latest = {"intent": {"name": intent}, "text": text, "entities": entities or []}
    if ranking:
        latest["intent_ranking"] = [{"name": n, "confidence": c} for n, c in ranking]
    if safety:
        latest["safety"] = safety
    return Tracker("user-1", slots or {}, latest, events or [], False, None, {}, "action_listen")


def run(action, state: Tracker) -> tuple[list[dict], dict]:
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, state, {})
    return dispatcher.messages, {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def responses(messages: list[dict]) -> list[str]:
    return [m["response"] for m in messages if m.get("response")]


def handoff_of(messages: list[dict]) -> dict | None:
    found = [m["custom"]["handoff"] for m in messages if m.get("custom")]
    assert len(found) <= 1
    return found[0] if found else None


def test_guidance_is_not_your_fault_then_steps_then_routes_with_one_question_the_person():
    safety = {"urgent": False, "kind": None, "topic": "sextortion"}
    messages, slots = run(ActionGuidance(), tracker("sextortion", safety=safety))
    # The routes end by offering a person; the age question waits for a later turn.
    assert responses(messages) == [
        "utter_sextortion_first",
        "utter_sextortion_steps",
        "utter_sextortion_routes",
    ]
    assert slots["topics"] == ["sextortion"] and "ticac" in slots["routes_given"]
    assert slots["pending"] == "person"
    assert handoff_of(messages) is None


def test_the_age_question_comes_in_a_later_turn_alone_and_never_to_a_caregiver():
    after = {"topics": ["sextortion"], "pending": "person"}
    asked = [{"entity": "question", "value": "what_happens"}]
    messages, slots = run(ActionRoutes(), tracker("report_help", slots=after, entities=asked))
    assert responses(messages) == ["utter_what_happens", "utter_ask_age"]
    assert slots["pending"] == "age" and slots["age_asked"] is True

    messages, slots = run(ActionAnswer(), tracker("deny", slots=after))
    assert responses(messages) == ["utter_person_declined", "utter_ask_age"]

    for known in ({"age_asked": True}, {"age_band": "16_17"}, {"role": "caregiver"}):
        state = tracker("report_help", slots={**after, **known}, entities=asked)
        assert "utter_ask_age" not in responses(run(ActionRoutes(), state)[0]), known
    # Before any help was given there is nothing to tailor yet.
    assert "utter_ask_age" not in responses(run(ActionRoutes(), tracker("report_help"))[0])
    # Routes that offer a person already ask one question.
    messages, slots = run(ActionRoutes(), tracker("report_help", slots=after))
    assert responses(messages) == ["utter_sextortion_routes"] and slots["pending"] == "person"


def test_caregivers_are_not_asked_their_age():
    safety = {"urgent": False, "kind": None, "topic": "grooming"}
    messages, _ = run(
        ActionGuidance(), tracker("grooming", safety=safety, slots={"role": "caregiver"})
    )
    assert "utter_ask_age" not in responses(messages)


def test_the_adult_button_makes_the_reader_a_caregiver():
    _, slots = run(ActionRecordAge(), tracker("provide_age", slots={"age_band": "adult"}))
    assert slots["role"] == "caregiver"
    _, slots = run(ActionRecordAge(), tracker("provide_age", slots={"age_band": "13_15"}))
    assert "role" not in slots


def test_asking_for_a_person_goes_straight_to_the_summary():
    for words in ("/talk_to_human", "can I talk to a real person"):
        state = tracker("talk_to_human", text=words, slots={"language": "en"})
        messages, slots = run(ActionOfferPerson(), state)
        assert responses(messages) == []  # no "would you like to…?" first
        handoff = handoff_of(messages)
        assert handoff["urgent"] is False and handoff["language"] == "en"
        assert slots["pending"] is None


def test_telling_and_asking_at_once_gets_not_your_fault_then_the_summary():
    words = "my stepdad touches me at night, can I talk to someone"
    safety = {"urgent": False, "kind": None, "topic": "abuse_disclosure"}
    state = tracker("abuse_disclosure", text=words, safety=safety, slots={"language": "en"})
    messages, slots = run(ActionGuidance(), state)
    assert responses(messages) == ["utter_abuse_disclosure_first"]
    assert handoff_of(messages)["topics"] == ["abuse_disclosure"]
    assert slots["topics"] == ["abuse_disclosure"]

    # Classified as the request, the situation still shows in the ranking.
    thai = "พ่อเลี้ยงจับตัวหนูตอนกลางคืน ขอคุยกับคนจริงๆได้ไหม"
    ranking = [("talk_to_human", 0.92), ("abuse_disclosure", 0.08)]
    messages, _ = run(ActionOfferPerson(), tracker("talk_to_human", text=thai, ranking=ranking))
    assert responses(messages) == ["utter_abuse_disclosure_first"]
    assert handoff_of(messages)["topics"] == ["abuse_disclosure"]
    # Said already in this conversation: not again.
    again = tracker(
        "talk_to_human", text=thai, ranking=ranking, slots={"topics": ["abuse_disclosure"]}
    )
    assert responses(run(ActionOfferPerson(), again)[0]) == []


def test_a_question_about_paying_is_answered_from_the_story_told_before():
    story = {"topics": ["sextortion"], "pending": "person"}
    messages, slots = run(ActionFollowUp(), tracker("ask_pay", slots=story))
    assert responses(messages) == ["utter_sextortion_pay", "utter_ask_age"]
    assert slots["topics"] == ["sextortion"]
    scam = {"topics": ["other_harm"], "age_asked": True}
    assert responses(run(ActionFollowUp(), tracker("ask_pay", slots=scam))[0]) == [
        "utter_other_harm_steps"
    ]
    messages, slots = run(ActionFollowUp(), tracker("ask_pay"))
    assert responses(messages) == ["utter_sextortion_pay"] and slots["topics"] == ["sextortion"]


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
    handoff = handoff_of(messages)
    assert handoff["urgent"] is True and handoff["language"] == "en"
    assert handoff["urgent_kind"] == "self_harm"
    assert handoff["topics"] == ["sextortion", "self_harm"]
    assert "mental_health_1323" in handoff["routes_given"]
    assert slots["urgent"] is True and slots["pending"] == "person"


def test_asked_to_phone_the_police_the_first_line_says_it_cannot_and_gives_191():
    safety = {"urgent": True, "kind": "immediate_danger", "topic": None, "asks_call": True}
    state = tracker("immediate_danger", text="can you call the police for me", safety=safety)
    messages, _ = run(ActionUrgent(), state)
    assert responses(messages)[:2] == ["utter_urgent_cannot_call", "utter_urgent_immediate_danger"]
    without = dict(safety, asks_call=False)
    state = tracker("immediate_danger", text="he is here", safety=without)
    messages, _ = run(ActionUrgent(), state)
    assert responses(messages) == ["utter_urgent_immediate_danger"]


SHOWN_TO_THE_CHILD = {"language", "role", "age_band", "topics", "routes_given"}
FLAGS = {"urgent", "urgent_kind"}


def test_the_stored_summary_holds_only_what_the_child_is_shown_never_their_words():
    words = ["he has my video", "my name is Ploy and I go to Satit school", "i want to die"]
    events = [{"event": "user", "text": w} for w in words]
    safety = {"urgent": True, "kind": "self_harm", "topic": "sextortion"}
    urgent = tracker("self_harm", text=words[-1], safety=safety, events=events)
    asked = tracker("talk_to_human", text="talk to a person", events=events)
    pending = tracker("affirm", text="yes", slots={"pending": "person"}, events=events)
    for action, state in (
        (ActionUrgent(), urgent),
        (ActionOfferPerson(), asked),
        (ActionAnswer(), pending),
    ):
        handoff = handoff_of(run(action, state)[0])
        assert set(handoff) <= SHOWN_TO_THE_CHILD | FLAGS, action.name()
        stored = json.dumps(handoff)
        assert not any(w in stored for w in words), action.name()


def test_yes_after_the_offer_requests_a_person_and_yes_otherwise_does_not():
    messages, _ = run(ActionAnswer(), tracker("affirm", slots={"pending": "person"}))
    assert handoff_of(messages)["urgent"] is False
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
