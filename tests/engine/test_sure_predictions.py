"""Skipping TED when a sure policy has answered (scripts/sure_predictions.py) must predict exactly
what Rasa predicts: every next action of every training story and rule, compared in full."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasa.core.policies.ensemble import DefaultPolicyPredictionEnsemble
from rasa.core.policies.policy import PolicyPrediction
from rasa.core.training import load_data
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from scripts import sure_predictions

ROOT = Path(__file__).resolve().parents[2]


def states(agent) -> list[DialogueStateTracker]:
    """Every point of every story and rule at which Rasa predicts the next action, and after each
    user turn the same point with every other intent: conversations no story has, where the
    rules and the memorised stories are not sure and TED decides."""
    domain = agent.domain
    trackers = load_data(str(ROOT / "data"), domain, augmentation_factor=0)
    found = []
    for tracker in trackers:
        events = list(tracker.events)
        for index, event in enumerate(events):
            if not isinstance(event, ActionExecuted) or index < 2:
                continue
            before, last = events[: index - 1], events[index - 1]
            variants = [last]
            if isinstance(last, UserUttered):
                variants += [
                    UserUttered(intent={"name": intent, "confidence": 1.0})
                    for intent in domain.intents
                    if intent != last.intent_name
                ]
            for variant in variants:
                found.append(
                    DialogueStateTracker.from_events(
                        tracker.sender_id, [*before, variant], slots=domain.slots
                    )
                )
    return found


def same(mine: PolicyPrediction, rasas: PolicyPrediction) -> bool:
    return (
        mine.policy_name == rasas.policy_name
        and mine.policy_priority == rasas.policy_priority
        and np.allclose(mine.probabilities, rasas.probabilities)
        and mine.events == rasas.events
        and mine.optional_events == rasas.optional_events
        and mine.is_end_to_end_prediction == rasas.is_end_to_end_prediction
        and mine.is_no_user_prediction == rasas.is_no_user_prediction
        and mine.hide_rule_turn == rasas.hide_rule_turn
        and mine.action_metadata == rasas.action_metadata
    )


def test_every_prediction_is_rasas_own(agent, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = agent.processor.graph_runner
    target = agent.processor.model_metadata.core_target
    ted_runs = []
    ted = next(name for name in runner._instantiated_nodes if name.startswith("run_TEDPolicy"))
    node = runner._instantiated_nodes[ted]
    original = node._fn  # what the graph node calls, with the policy as first argument

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        ted_runs.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(node, "_fn", counted)
    checked = differ = skipped = 0
    for tracker in states(agent):
        inputs = {sure_predictions.TRACKER: tracker}
        rasas = sure_predictions._run(runner, inputs, [target])[target]
        before = len(ted_runs)
        mine = sure_predictions.run(runner, inputs, [target])[target]
        skipped += len(ted_runs) == before
        differ += not same(mine, rasas)
        checked += 1
    print(f"  {checked} predictions, TED skipped in {skipped}, {differ} differ")
    assert checked > 100 and differ == 0
    assert 0 < skipped < checked  # both paths taken: TED is still asked when it matters


def test_only_the_next_action_prediction_is_planned(agent) -> None:
    runner = agent.processor.graph_runner
    target = agent.processor.model_metadata.core_target
    plan = sure_predictions._plan(runner, [target])
    assert plan is not None and any(name.startswith("run_TEDPolicy") for name in plan[1])
    assert sure_predictions._plan(runner, ["run_RulePolicy0"]) is None
    assert ACTION_LISTEN_NAME in agent.domain.action_names_or_texts


def test_a_decided_pick_is_rasas_whatever_ted_would_say() -> None:
    """Rasa's own picker over random predictions: whenever `_decided` says TED cannot matter, the
    pick with any TED prediction is the pick with TED abstaining."""
    rng = np.random.default_rng(16)
    pick = DefaultPolicyPredictionEnsemble._pick_best_policy
    decided = 0
    for _ in range(3000):
        sure = []
        for name, priority in (("RulePolicy", 6), ("MemoizationPolicy", 3)):
            probabilities = [0.0] * 5
            probabilities[rng.integers(5)] = float(rng.choice([0.0, 0.3, 0.7, 1.0]))
            sure.append(
                PolicyPrediction(
                    probabilities,
                    name,
                    priority,
                    is_no_user_prediction=bool(rng.random() < 0.05),
                )
            )
        ted = PolicyPrediction(list(rng.dirichlet(np.ones(5))), "TEDPolicy", 1)
        abstains = PolicyPrediction([0.0] * 5, "TEDPolicy", 1)
        if not sure_predictions._decided(sure, 1):
            continue
        decided += 1
        assert same(pick([*sure, abstains]), pick([*sure, ted]))
    assert decided > 500
