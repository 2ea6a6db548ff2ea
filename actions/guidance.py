"""Guidance for a situation: not your fault first, then the steps, then routes and a person."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import appended, asks_for_person, handoff_summary, safety
from actions.routes_for import routes_for

GUIDED_TOPICS = ("sextortion", "image_shared", "grooming", "abuse_disclosure", "other_harm")


def guided_topic(tracker: Tracker) -> str | None:
    """The situation this conversation is about: the latest one guidance was given for."""
    topics = [t for t in tracker.get_slot("topics") or [] if t in GUIDED_TOPICS]
    return topics[-1] if topics else None


def age_question(tracker: Tracker, dispatcher: CollectingDispatcher) -> List[Dict[str, Any]]:
    """Ask a child's age once, in a turn after the guidance and never beside another question,
    so help never waits for it and the child has one thing to answer. Never a caregiver's or a
    friend's, and not while something urgent is happening."""
    if tracker.get_slot("age_asked") or tracker.get_slot("age_band"):
        return []
    if tracker.get_slot("role") in ("caregiver", "friend") or tracker.get_slot("urgent"):
        return []
    if guided_topic(tracker) is None:
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
        if topic not in GUIDED_TOPICS:
            dispatcher.utter_message(response="utter_online_safety")
            return [
                SlotSet("pending", None),
                SlotSet("topics", appended(tracker, "topics", "online_safety")),
            ]
        topics = appended(tracker, "topics", topic)
        dispatcher.utter_message(response=f"utter_{topic}_first")
        if asks_for_person(tracker):
            # Told and asked at once: not your fault, then straight to the summary to approve.
            summary = handoff_summary(tracker, False, topics=topics)
            dispatcher.utter_message(json_message={"handoff": summary})
            return [SlotSet("pending", None), SlotSet("topics", topics)]
        for part in ("steps", "routes"):
            dispatcher.utter_message(response=f"utter_{topic}_{part}")
        given = routes_for(topic, tracker.get_slot("role"))
        # The routes end by offering a person: a "yes" now means that.
        return [
            SlotSet("pending", "person"),
            SlotSet("topics", topics),
            SlotSet("routes_given", appended(tracker, "routes_given", *given)),
        ]


class ActionFollowUp(Action):
    """A question about paying ("do I have to send him the money?"), read in the conversation's
    context: the situation told over earlier messages decides the answer."""

    def name(self) -> str:
        return "action_follow_up"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        topic = guided_topic(tracker)
        if topic == "other_harm":  # a scam: its steps say not to send more money
            dispatcher.utter_message(response="utter_other_harm_steps")
        else:
            topic = topic or "sextortion"
            dispatcher.utter_message(response="utter_sextortion_pay")
        events = [SlotSet("pending", None), SlotSet("topics", appended(tracker, "topics", topic))]
        return events + age_question(tracker, dispatcher)
