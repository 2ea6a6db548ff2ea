"""A person: asked for, or said yes to; and the other answers to what was last asked."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import appended, handoff_summary, told_too
from actions.guidance import age_question


class ActionOfferPerson(Action):
    """Asking for a person is the answer already: straight to the summary the child approves."""

    def name(self) -> str:
        return "action_offer_person"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        events: List[Dict[str, Any]] = [SlotSet("pending", None)]
        known = {}
        topic = told_too(tracker)
        if topic and topic not in (tracker.get_slot("topics") or []):
            # Told and asked at once: not your fault first, then the summary, in one reply.
            dispatcher.utter_message(response=f"utter_{topic}_first")
            known["topics"] = appended(tracker, "topics", topic)
            events.append(SlotSet("topics", known["topics"]))
        dispatcher.utter_message(json_message={"handoff": handoff_summary(tracker, False, **known)})
        return events


class ActionAnswer(Action):
    """Yes/no means something only after a question; otherwise ask what the user needs."""

    def name(self) -> str:
        return "action_answer"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        yes = (tracker.latest_message.get("intent") or {}).get("name") == "affirm"
        events: List[Dict[str, Any]] = [SlotSet("pending", None)]
        if tracker.get_slot("pending") == "person":
            if yes:
                dispatcher.utter_message(json_message={"handoff": handoff_summary(tracker, False)})
            else:
                dispatcher.utter_message(response="utter_person_declined")
                events += age_question(tracker, dispatcher)
        else:
            dispatcher.utter_message(response="utter_anything_else")
        return events


class ActionRecordAge(Action):
    """The age band slot is filled from the message's entity; this thanks and moves on. An adult
    is a parent or carer from now on, so every later reply is written for them."""

    def name(self) -> str:
        return "action_record_age"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        events = [SlotSet("pending", None), SlotSet("age_asked", True)]
        if tracker.get_slot("age_band") == "adult":
            events.append(SlotSet("role", "caregiver"))
        dispatcher.utter_message(response="utter_age_thanks")
        return events
