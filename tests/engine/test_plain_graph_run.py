"""Rasa's graphs run depth first (scripts/plain_graph_run.py) give what dask's scheduler gives:
the trained model's NLU parse of every training example and its next-action prediction at
every point of every story and rule, compared in full."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dask
from rasa.shared.nlu.training_data.loading import load_data as load_nlu

from scripts import plain_graph_run
from tests.engine.test_sure_predictions import states

ROOT = Path(__file__).resolve().parents[2]


def test_a_graph_is_computed_depth_first_each_node_once():
    calls = []

    def node(name):
        def run(*inputs):
            calls.append(name)
            return (name, inputs)

        return run

    graph = {
        "input": ("input", "hello"),  # an input: a literal pair, as Rasa adds them
        "a": (node("a"), "input"),
        "b": (node("b"), "a", "not a key"),
        "c": (node("c"), "a", "b"),
    }
    assert plain_graph_run.get(graph, ["c", "b"]) == dask.get(graph, ["c", "b"])
    calls.clear()
    plain_graph_run.get(graph, ["c", "b"])
    assert sorted(calls) == ["a", "b", "c"]


def _with(runner, agent, work):
    """`work(agent)` with `runner` as dask.get."""
    original = dask.get
    dask.get = runner
    try:
        return work(agent)
    finally:
        dask.get = original


def _parses(agent) -> list[dict]:
    examples = load_nlu(str(ROOT / "data" / "nlu")).intent_examples
    texts = sorted({example.get("text") for example in examples})
    assert len(texts) > 500
    return [asyncio.run(agent.parse_message(text)) for text in texts]


def _prediction(agent, tracker) -> tuple:
    prediction = agent.processor._predict_next_with_tracker(tracker)
    return prediction.policy_name, prediction.max_confidence, tuple(prediction.probabilities)


def test_every_parse_is_the_same_as_dasks(agent):
    assert _with(plain_graph_run.get, agent, _parses) == _with(dask.get, agent, _parses)


def test_every_prediction_is_the_same_as_dasks(agent):
    """Each point twice in a row, once each way: the trackers share the domain's slots, so
    points are only comparable with themselves."""
    checked = 0
    for tracker in states(agent):
        theirs = _with(dask.get, agent, lambda a: _prediction(a, tracker))  # noqa: B023
        ours = _with(plain_graph_run.get, agent, lambda a: _prediction(a, tracker))  # noqa: B023
        assert ours == theirs
        checked += 1
    assert checked > 500
