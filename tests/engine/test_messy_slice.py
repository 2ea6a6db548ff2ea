"""The messy slice of `make eval` measures something only while it stays apart from training."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from components.normaliser import normalise
from components.topics import TOPICS
from scripts.eval import slice_arg

ROOT = Path(__file__).resolve().parents[2]
MESSY = ROOT / "tests" / "eval" / "messy.yml"


def _items() -> list[dict]:
    return yaml.safe_load(MESSY.read_text(encoding="utf-8"))["items"]


def _training() -> set[str]:
    texts = set()
    for name in ("en.yml", "th.yml"):
        for block in yaml.safe_load((ROOT / "data" / "nlu" / name).read_text())["nlu"]:
            lines = (block.get("examples") or "").splitlines()
            texts |= {line[2:].strip() for line in lines if line.startswith("- ")}
    return texts


def test_every_topic_in_both_languages() -> None:
    items = _items()
    assert len(items) >= 100
    for lang in ("th", "en"):
        assert {i["topic"] for i in items if i["lang"] == lang} == set(TOPICS)
    assert all(i["urgent"] for i in items if i["topic"] in ("self_harm", "immediate_danger"))


def test_no_messy_line_is_taught() -> None:
    training = _training()
    folded = {normalise(t) for t in training}
    for item in _items():
        assert item["text"] not in training, item["text"]
        assert normalise(item["text"]) not in folded, item["text"]


def test_a_slice_is_named() -> None:
    assert slice_arg("messy=tests/eval/messy.yml") == ("messy", Path("tests/eval/messy.yml"))
    with pytest.raises(argparse.ArgumentTypeError):
        slice_arg("tests/eval/messy.yml")
