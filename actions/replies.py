"""Actions that answer one intent with one response and change nothing else."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher


class _Say(Action):
    action: str = ""
    response: str = ""

    def name(self) -> str:
        return self.action

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        dispatcher.utter_message(response=self.response)
        return []


class ActionGreet(_Say):
    action, response = "action_greet", "utter_greet"


class ActionOutOfScope(_Say):
    action, response = "action_out_of_scope", "utter_out_of_scope"


class ActionThanks(_Say):
    action, response = "action_thanks", "utter_thanks"


class ActionLanguageChanged(_Say):
    action, response = "action_language_changed", "utter_language_changed"
