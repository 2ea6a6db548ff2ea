"""The urgent path: emergency numbers and a person now, in the same turn, whatever was running."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import appended, handoff_summary, safety
from actions.routes_for import routes_for
from components.topics import URGENT_TOPICS


class ActionUrgent(Action):
    def name(self) -> str:
        return "action_urgent"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        decision = safety(tracker)
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        kind = decision.get("kind") if decision.get("kind") in URGENT_TOPICS else intent
        kind = kind if kind in URGENT_TOPICS else "immediate_danger"
        if decision.get("asks_call"):  # first of all: it cannot phone for them, 191 can
            dispatcher.utter_message(response="utter_urgent_cannot_call")
        dispatcher.utter_message(response=f"utter_urgent_{kind}")

        topics = appended(tracker, "topics", decision.get("topic"), kind)
        given = appended(tracker, "routes_given", *routes_for(kind, tracker.get_slot("role")))
        events = [
            SlotSet("urgent", True),
            SlotSet("topics", topics),
            SlotSet("routes_given", given),
            SlotSet("pending", "person"),
        ]
        summary = handoff_summary(
            tracker, urgent=True, topics=topics, routes_given=given, urgent_kind=kind
        )
        dispatcher.utter_message(json_message={"handoff": summary})
        return events
