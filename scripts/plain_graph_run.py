"""Rasa's graphs run depth first, without dask's scheduler.

Rasa 3.6 runs its NLU pipeline and its policies as a graph through `dask.get` several times a
turn. Dask's synchronous scheduler orders the whole graph anew on every run (`dask.order`), which
`make bench`'s profile showed as a share of each Rasa server's CPU of its own: parsing a message
took 3.6 ms with it and 2.8 ms without. A Rasa graph is plain: every task is a node called with
the results of the nodes it needs (named by their keys), and an input is a literal pair. So each
target is computed depth first, each node once, and the results are the same.

Installed by scripts/rasa_server.py; tests/engine/test_plain_graph_run.py compares it with dask.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import dask


def get(graph: Mapping[Hashable, Any], targets: Sequence[Hashable], **_: Any) -> tuple[Any, ...]:
    """`dask.get(graph, targets)` for a graph whose tasks are (callable, *keys or literals)."""
    done: dict[Hashable, Any] = {}
    return tuple(_value(graph, target, done) for target in targets)


def _value(graph: Mapping[Hashable, Any], key: Hashable, done: dict[Hashable, Any]) -> Any:
    if key in done:
        return done[key]
    task = graph[key]
    if isinstance(task, tuple) and task and callable(task[0]):
        arguments = [_argument(graph, argument, done) for argument in task[1:]]
        result = task[0](*arguments)
    else:
        result = task  # a literal, as dask takes it
    done[key] = result
    return result


def _argument(graph: Mapping[Hashable, Any], argument: Any, done: dict[Hashable, Any]) -> Any:
    """A node's name (Rasa's keys are names) stands for its result; anything else is itself."""
    if isinstance(argument, str) and argument in graph:
        return _value(graph, argument, done)
    return argument


def install() -> None:
    dask.get = get
