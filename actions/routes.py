"""Reporting routes: one route explained, a question answered, or the routes that fit."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import appended, entity
from actions.guidance import age_question, guided_topic

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
        topic = guided_topic(tracker)
        if route:
            dispatcher.utter_message(response=f"utter_route_{route}")
            events = [SlotSet("routes_given", appended(tracker, "routes_given", route))]
        elif question in QUESTIONS:
            dispatcher.utter_message(response=QUESTIONS[question])
            events = []
        elif topic:
            # The topic's routes end by offering a person: that is this turn's one question.
            dispatcher.utter_message(response=f"utter_{topic}_routes")
            return [SlotSet("pending", "person")]
        else:
            dispatcher.utter_message(response="utter_routes_overview")
            events = []
        return events + age_question(tracker, dispatcher)
