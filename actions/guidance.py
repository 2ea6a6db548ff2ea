"""Guidance for a situation: not your fault first, then the steps, then routes and a person."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import appended, safety
from actions.routes_for import routes_for

GUIDED_TOPICS = ("sextortion", "image_shared", "grooming", "abuse_disclosure", "other_harm")


def age_question(tracker: Tracker, dispatcher: CollectingDispatcher) -> List[Dict[str, Any]]:
    """Ask a child's age once, after help was given, so help never waits for it."""
    if tracker.get_slot("age_asked") or tracker.get_slot("age_band"):
        return []
    if tracker.get_slot("role") in ("caregiver", "friend"):
        return []
    dispatcher.utter_message(response="utter_ask_age")
    return [SlotSet("age_asked", True), SlotSet("pending", "age")]


class ActionGuidance(Action):
    def name(self) -> str:
        return "action_guidance"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        topic = safety(tracker)["topic"]
        events: List[Dict[str, Any]] = [SlotSet("pending", None)]
        if topic in GUIDED_TOPICS:
            for part in ("first", "steps", "routes"):
                dispatcher.utter_message(response=f"utter_{topic}_{part}")
            given = routes_for(topic, tracker.get_slot("role"))
            events.append(SlotSet("routes_given", appended(tracker, "routes_given", *given)))
        else:
            topic = "online_safety"
            dispatcher.utter_message(response="utter_online_safety")
        events.append(SlotSet("topics", appended(tracker, "topics", topic)))
        return events + age_question(tracker, dispatcher)
