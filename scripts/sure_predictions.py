"""Rasa's next-action prediction without running TED when its answer cannot matter.

Rasa 3.6 runs every policy for every prediction (several a turn) and then picks one: a "no user"
prediction first, then the highest (confidence, priority). RulePolicy and MemoizationPolicy are
sure of what they recall (confidence 1.0) and rank above TEDPolicy; TED's neural network is the
largest part of a Rasa server's CPU per turn in `make bench`'s profile, yet when the rules or the
memorised stories already answer with 1.0 its prediction can never be the one picked. So the
certain policies run first, and TED runs only when none of them is sure.

TED is skipped only where that cannot change the outcome: it was trained on intents, not on user
text (so its prediction is never an end-to-end one, which would outrank the others), every sure
prediction outranks it, and the last action was not rejected (Rasa then sets the rejected action's
confidence to 0 in every prediction, and TED might win). Otherwise the graph runs as Rasa runs it.
tests/engine/test_sure_predictions.py compares every prediction with Rasa's own.

Installed by scripts/rasa_server.py.
"""

from __future__ import annotations

from typing import Any

import dask
from rasa.core.policies.ensemble import DefaultPolicyPredictionEnsemble
from rasa.core.policies.policy import PolicyPrediction
from rasa.core.policies.ted_policy import TEDPolicy
from rasa.engine.graph import GraphNode
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.core.events import ActionExecuted, ActionExecutionRejected
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import TEXT

TRACKER = "__tracker__"
DOMAIN = "domain_provider"

_run = DaskGraphRunner.run


def _component(runner: DaskGraphRunner, name: str) -> Any:
    node: GraphNode = runner._instantiated_nodes[name]
    return node._component


def _plan(runner: DaskGraphRunner, targets: list[str] | None) -> tuple[list[str], list[str]] | None:
    """For a prediction of the next action: the policies that run first, and those that may be
    skipped; None for anything else."""
    if not targets or len(targets) != 1:
        return None
    schema = runner._graph_schema.nodes.get(targets[0])
    if schema is None or schema.uses is not DefaultPolicyPredictionEnsemble:
        return None
    policies = [need for key, need in schema.needs.items() if key.startswith("policy")]
    skippable = [
        name
        for name in policies
        if isinstance(_component(runner, name), TEDPolicy)
        and TEXT not in _component(runner, name).fake_features
    ]
    first = [name for name in policies if name not in skippable]
    if not skippable or not first:
        return None
    return first, skippable


def _decided(predictions: list[PolicyPrediction], below: int) -> bool:
    """One of `predictions` wins over anything a policy of priority `below` can predict."""
    return any(
        p.is_no_user_prediction or (p.max_confidence >= 1.0 and p.policy_priority > below)
        for p in predictions
    )


def _rejected(tracker: DialogueStateTracker) -> bool:
    for event in reversed(tracker.events):
        if isinstance(event, (ActionExecutionRejected, ActionExecuted)):
            return isinstance(event, ActionExecutionRejected)
    return False


def run(
    self: DaskGraphRunner,
    inputs: dict[str, Any] | None = None,
    targets: list[str] | None = None,
) -> dict[str, Any]:
    plan = _plan(self, targets)
    tracker = (inputs or {}).get(TRACKER)
    if plan is None or not isinstance(tracker, DialogueStateTracker) or _rejected(tracker):
        return _run(self, inputs, targets)
    first, skippable = plan
    known = _run(self, inputs, [*first, DOMAIN])
    domain = known.pop(DOMAIN)
    below = max(_component(self, name).priority for name in skippable)
    if _decided(list(known.values()), below):
        for name in skippable:
            ted = _component(self, name)
            known[name] = ted._prediction(ted._default_predictions(domain))
    graph = self._build_dask_graph(self._graph_schema.minimal_graph_schema(targets))
    self._add_inputs_to_graph(inputs, graph)
    # A node's result is the pair (its name, its output), as GraphNode returns it.
    graph.update({name: (name, value) for name, value in known.items()})
    return dict(dask.get(graph, targets))


def install() -> None:
    DaskGraphRunner.run = run
