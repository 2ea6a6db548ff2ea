"""Offering a person, and answering yes/no to whatever was last asked."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import handoff_summary


class ActionOfferPerson(Action):
    def name(self) -> str:
        return "action_offer_person"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        dispatcher.utter_message(response="utter_offer_person")
        return [SlotSet("pending", "person")]


class ActionAnswer(Action):
    """Yes/no means something only after a question; otherwise ask what the user needs."""

    def name(self) -> str:
        return "action_answer"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        yes = (tracker.latest_message.get("intent") or {}).get("name") == "affirm"
        if tracker.get_slot("pending") == "person":
            if yes:
                dispatcher.utter_message(json_message={"handoff": handoff_summary(tracker, False)})
            else:
                dispatcher.utter_message(response="utter_person_declined")
        else:
            dispatcher.utter_message(response="utter_anything_else")
        return [SlotSet("pending", None)]


class ActionRecordAge(Action):
    """The age band slot is filled from the message's entity; this only thanks and moves on."""

    def name(self) -> str:
        return "action_record_age"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        dispatcher.utter_message(response="utter_age_thanks")
        return [SlotSet("pending", None), SlotSet("age_asked", True)]
