"""`make bench`'s arithmetic: the profile summary, the Rasa servers summed, the issue's targets,
the sizing table and the burst's counts. The bench itself is run by `make bench`, not here."""

from __future__ import annotations

import time

import pytest

from scripts.bench.burst import BurstTally
from scripts.bench.profiling import summarise
from scripts.bench.reporting import acceptance, per_service, sizing


def test_profile_shares_count_a_recursive_function_once_per_sample() -> None:
    collapsed = "\n".join(
        [
            "main (app.py:1);handle (app.py:10);parse (nlu.py:5) 6",
            "main (app.py:1);handle (app.py:10);walk (tree.py:3);walk (tree.py:3) 3",
            "main (app.py:1) 1",
            "not a stack line",
        ]
    )
    summary = summarise(collapsed)
    assert summary["samples"] == 10
    self_share = {row["function"]: row["self"] for row in summary["by_self"]}
    assert self_share["parse (nlu.py:5)"] == pytest.approx(0.6)
    assert self_share["walk (tree.py:3)"] == pytest.approx(0.3)
    cumulative = {row["function"]: row["cumulative"] for row in summary["by_cumulative"]}
    assert cumulative["main (app.py:1)"] == pytest.approx(1.0)
    assert cumulative["handle (app.py:10)"] == pytest.approx(0.9)
    assert cumulative["walk (tree.py:3)"] == pytest.approx(0.3)  # not 0.6
    assert summary["by_cumulative"][0]["function"] == "main (app.py:1)"


def test_rasa_servers_are_summed_as_one_service_and_total_stays_last() -> None:
    measured = {"actions": 100.0, "gateway": 120.0, "rasa": 1000.0, "rasa2": 990.0, "total": 2210}
    assert list(per_service(measured).items()) == [
        ("actions", 100.0),
        ("gateway", 120.0),
        ("rasa", 1990.0),
        ("total", 2210),
    ]


def _report(p95_200: float, answers_200: float, fallbacks_200: int) -> dict:
    turn = {
        "10": {"p50": 40.0, "p95": 80.0},
        "50": {"p50": 60.0, "p95": 300.0},
        "200": {"p50": 500.0, "p95": p95_200},
    }
    return {
        "turn_ms": turn,
        "fallbacks": {"10": 0, "50": 0, "200": fallbacks_200},
        "holding": {"10": 0, "50": 0, "200": 0},
        "errors": {"10": 0, "50": 0, "200": 0},
        "bot_answer_throughput": {"10": 1.3, "50": 6.4, "200": answers_200},
        "stock_turn_p50_ratio": 0.9,
        "rss_mb": {"total": {"load": 1900.0}},
        "line_ack_p99_ms": 30.0,
        "gateway_overhead_p50_ratio": 1.1,
        "config": {"think_s": [3.0, 12.0]},
    }


def test_throughput_target_is_a_floor_and_the_others_ceilings() -> None:
    met = acceptance(_report(p95_200=900, answers_200=24.0, fallbacks_200=0))
    assert all(check["ok"] for check in met.values())
    assert met["real answers/s at 200"]["op"] == ">="
    missed = acceptance(_report(p95_200=1100, answers_200=23.9, fallbacks_200=1))
    assert not missed["real answers/s at 200"]["ok"]
    assert not missed["p95 ms per turn at 200"]["ok"]
    assert not missed["fallbacks at 200"]["ok"]
    assert missed["p95 ms per turn at 10"]["ok"]


def test_sizing_uses_the_highest_level_within_a_second_and_without_fail_safes() -> None:
    full = sizing(_report(p95_200=900, answers_200=24.0, fallbacks_200=0))
    assert full["level"] == 200 and full["lower_bound"]
    assert full["children_per_replica"] == 200 and full["answers_per_s"] == 24.0
    assert full["replicas_for"]["1000"] == 5 and full["replicas_for"]["500"] == 3
    overloaded = sizing(_report(p95_200=900, answers_200=20.0, fallbacks_200=3))
    assert overloaded["level"] == 50 and not overloaded["lower_bound"]
    assert overloaded["answers_per_s"] == 6.4 and overloaded["children_per_replica"] == 50


def test_burst_counts_what_each_turn_ended_with() -> None:
    tally = BurstTally()
    started = time.perf_counter()
    tally.note(False, "answer", started)  # answered at once
    tally.note(True, "answer", started)  # holding line, then the answer
    tally.note(True, None, started)  # holding line, then nothing
    tally.note(True, "fallback", started)  # holding line, then the fail-safe
    tally.note(False, "fallback", started)
    tally.note(False, None, started)  # nothing at all
    assert tally.counts() == {
        "turns": 6,
        "holding": 3,
        "followed_by_answer": 1,
        "only_holding": 1,
        "fallbacks": 2,
        "errors": 1,
    }
    assert len(tally.answer_ms) == 2
