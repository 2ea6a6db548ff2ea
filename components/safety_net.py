"""The urgent safety net: a reviewed lexicon that no classifier mistake can switch off.

Runs after the intent classifier. When the message speaks of self-harm or danger right now (by the
lexicon, or because the classifier says so), the message is marked urgent and its intent becomes
the urgent one, so the dialogue's urgent rules fire whatever flow or question is pending. What the
message was about (its topic) is kept in the `safety` output for the guidance that follows.
"""

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from components import lexicon
from components.normaliser import RAW_TEXT
from components.topics import DISCLOSURE_TOPICS, URGENT_TOPICS, topic_of

SAFETY = "safety"


def assess(text: str, intent: str | None) -> Dict[str, Any]:
    """{urgent, kind, topic, matched, asks_call}: the decision, and why, for one message.
    `asks_call`: the child asks the assistant itself to phone the police, which it cannot do."""
    topic = topic_of(intent)
    matched = None
    kind = None
    for label, matcher in lexicon.load("urgent").items():
        matched = matcher.search(text)
        if matched:
            kind = label
            break
    call = lexicon.load("call")["asks_call"].search(text)
    if call and kind is None:
        kind, matched = "immediate_danger", call
    if kind and topic not in DISCLOSURE_TOPICS and topic not in URGENT_TOPICS:
        topic = kind
    if kind is None and topic in URGENT_TOPICS:
        kind = topic
    return {
        "urgent": kind is not None,
        "kind": kind,
        "topic": topic,
        "matched": matched,
        "asks_call": call is not None,
    }


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class UrgentSafetyNet(GraphComponent):
    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> UrgentSafetyNet:
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            intent = message.get(INTENT) or {}
            text = message.get(TEXT) or ""
            decision = assess(text, intent.get(INTENT_NAME_KEY))
            raw = message.get(RAW_TEXT) or text
            if not decision["urgent"] and raw != text:
                # The words as typed get a second look: no normalisation may hide a cry for help.
                as_typed = assess(raw, intent.get(INTENT_NAME_KEY))
                decision = as_typed if as_typed["urgent"] else decision
            message.set(SAFETY, decision, add_to_output=True)
            if decision["urgent"] and intent.get(INTENT_NAME_KEY) != decision["kind"]:
                message.set(
                    INTENT,
                    {INTENT_NAME_KEY: decision["kind"], "confidence": 1.0},
                    add_to_output=True,
                )
        return messages
