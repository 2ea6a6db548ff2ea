"""Reporting routes: one route explained, a question answered, or the routes that fit."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import appended, entity
from actions.guidance import GUIDED_TOPICS

QUESTIONS = {
    "what_happens": "utter_what_happens",
    "evidence": "utter_keep_evidence",
    "police": "utter_police",
    "other_routes": "utter_routes_overview",
}


class ActionRoutes(Action):
    def name(self) -> str:
        return "action_routes"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        route = entity(tracker, "route")
        question = entity(tracker, "question")
        topics = [t for t in tracker.get_slot("topics") or [] if t in GUIDED_TOPICS]
        if route:
            dispatcher.utter_message(response=f"utter_route_{route}")
            return [SlotSet("routes_given", appended(tracker, "routes_given", route))]
        if question in QUESTIONS:
            dispatcher.utter_message(response=QUESTIONS[question])
        elif topics:
            dispatcher.utter_message(response=f"utter_{topics[-1]}_routes")
        else:
            dispatcher.utter_message(response="utter_routes_overview")
        return []
