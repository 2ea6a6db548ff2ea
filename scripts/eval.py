"""`make eval`: how well the trained assistant understands a labelled set (shared/eval/README.md).

Parses every message with the project's model (NLU + signals + safety net) and, in the same run,
with Rasa's stock pipeline trained on the same data (the baseline), then writes the JSON report and
prints a table. Each `--slice NAME=PATH` (e.g. the messy slice, tests/eval/messy.yml) is measured
the same way and reported on its own under `slices`. Runs in the engine environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from components.topics import TOPICS, URGENT_TOPICS, topic_of  # noqa: E402

MODEL = ROOT / "models" / "assistant.tar.gz"
BASELINE_NAME = "Rasa default (WhitespaceTokenizer + CountVectors + DIET)"
BASELINE_CONFIG = {
    "recipe": "default.v1",
    "assistant_id": "baseline",
    "language": "en",
    "pipeline": [
        {"name": "WhitespaceTokenizer"},
        {"name": "CountVectorsFeaturizer"},
        # The project's DIET settings, so the comparison isolates tokenization and features.
        {
            "name": "DIETClassifier",
            "epochs": 60,
            "number_of_transformer_layers": 0,
            "batch_size": [128, 256],
            "random_seed": 42,
            "entity_recognition": False,
        },
    ],
    "policies": [],
}


def prf(gold: List[str], pred: List[str], label: str) -> Dict[str, float]:
    tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
    predicted = sum(p == label for p in pred)
    support = sum(g == label for g in gold)
    precision = tp / predicted if predicted else 0.0
    recall = tp / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def macro_f1(gold: List[str], pred: List[str]) -> float:
    labels = [t for t in TOPICS if t in set(gold) | set(pred)]
    return sum(prf(gold, pred, t)["f1"] for t in labels) / len(labels) if labels else 0.0


def ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def entity(parse: Dict[str, Any], name: str) -> str | None:
    return next((e["value"] for e in parse.get("entities", []) if e["entity"] == name), None)


def project_prediction(parse: Dict[str, Any]) -> Dict[str, Any]:
    safety = parse.get("safety") or {}
    intent = (parse.get("intent") or {}).get("name")
    topic = safety.get("topic") or topic_of(intent)
    return {
        "topic": topic,
        "urgent": bool(safety.get("urgent")) or topic in URGENT_TOPICS,
        "role": entity(parse, "role") or "child",
        "lang": entity(parse, "language") or "th",
    }


def topic_scores(items: List[Dict[str, Any]], topics: List[str]) -> Dict[str, Any]:
    gold = [i["topic"] for i in items]
    by_lang = {}
    for lang in sorted({i["lang"] for i in items}):
        idx = [k for k, i in enumerate(items) if i["lang"] == lang]
        by_lang[lang] = {
            "n": len(idx),
            "topic_macro_f1": macro_f1([gold[k] for k in idx], [topics[k] for k in idx]),
        }
    return {"topic_macro_f1": macro_f1(gold, topics), "by_lang": by_lang}


def score(items: List[Dict[str, Any]], preds: List[Dict[str, Any]]) -> Dict[str, Any]:
    gold = [i["topic"] for i in items]
    topics = [p["topic"] for p in preds]
    urgent_gold = [bool(i["urgent"]) for i in items]
    urgent_pred = [p["urgent"] for p in preds]
    pairs = list(zip(items, preds, strict=True))
    with_role = [(i, p) for i, p in pairs if i.get("role", "unknown") != "unknown"]
    report = {
        "n": len(items),
        "topic_accuracy": ratio(sum(g == p for g, p in zip(gold, topics, strict=True)), len(items)),
        **topic_scores(items, topics),
        "per_topic": {t: prf(gold, topics, t) for t in TOPICS if t in set(gold) | set(topics)},
        "urgent_recall": ratio(
            sum(g and p for g, p in zip(urgent_gold, urgent_pred, strict=True)), sum(urgent_gold)
        ),
        "urgent_precision": ratio(
            sum(g and p for g, p in zip(urgent_gold, urgent_pred, strict=True)), sum(urgent_pred)
        ),
        "false_urgent_rate": ratio(
            sum(p and not g for g, p in zip(urgent_gold, urgent_pred, strict=True)),
            sum(not g for g in urgent_gold),
        ),
        "role_accuracy": ratio(sum(i["role"] == p["role"] for i, p in with_role), len(with_role)),
        "lang_accuracy": ratio(
            sum(i["lang"] == p["lang"] for i, p in zip(items, preds, strict=True)), len(items)
        ),
    }
    report["errors"] = [
        {"text": i["text"], "field": field, "expected": i[field], "got": p[field]}
        for i, p in zip(items, preds, strict=True)
        for field in ("topic", "urgent", "role", "lang")
        if (field != "role" or i.get("role", "unknown") != "unknown") and i[field] != p[field]
    ]
    return report


async def parse_all(model: Path, texts: Iterable[str]) -> tuple[List[Dict[str, Any]], float]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    parses, started = [], time.perf_counter()
    texts = list(texts)
    for text in texts:
        parses.append(await agent.parse_message(text))
    return parses, (time.perf_counter() - started) * 1000 / max(len(texts), 1)


def train_baseline(workdir: Path) -> Path:
    """Rasa's stock pipeline on exactly the project's NLU data; retrained only when data changed."""
    from rasa.model_training import train_nlu

    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(yaml.safe_dump(BASELINE_CONFIG))
    result = train_nlu(
        str(config), str(ROOT / "data" / "nlu"), str(workdir), fixed_model_name="baseline"
    )
    return Path(result)


def table(report: Dict[str, Any]) -> str:
    rows = [
        ("messages", f"{report['n']}"),
        ("topic macro F1", f"{report['topic_macro_f1']:.3f}"),
        *[
            (f"  {lang}", f"{v['topic_macro_f1']:.3f}  (n={v['n']})")
            for lang, v in report["by_lang"].items()
        ],
        ("topic accuracy", f"{report['topic_accuracy']:.3f}"),
        ("urgent recall", f"{report['urgent_recall']:.3f}"),
        ("urgent precision", f"{report['urgent_precision']:.3f}"),
        ("false urgent rate", f"{report['false_urgent_rate']:.3f}"),
        ("role accuracy", f"{report['role_accuracy']:.3f}"),
        ("language accuracy", f"{report['lang_accuracy']:.3f}"),
        ("baseline macro F1", f"{report['baseline']['topic_macro_f1']:.3f}"),
        *[
            (f"  {lang}", f"{v['topic_macro_f1']:.3f}")
            for lang, v in report["baseline"]["by_lang"].items()
        ],
        (
            "parse ms (project / baseline)",
            f"{report['parse_ms']['project']:.1f} / {report['parse_ms']['baseline']:.1f}",
        ),
    ]
    lines = [f"{name:<32}{value}" for name, value in rows]
    lines.append("")
    lines.append(f"{'topic':<20}{'prec':>6}{'rec':>6}{'f1':>6}{'n':>5}")
    for topic, v in report["per_topic"].items():
        lines.append(
            f"{topic:<20}{v['precision']:>6.2f}{v['recall']:>6.2f}{v['f1']:>6.2f}{v['support']:>5}"
        )
    return "\n".join(lines)


def slice_arg(value: str) -> tuple[str, Path]:
    """`name=path` for --slice."""
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError("a slice is NAME=PATH, e.g. messy=tests/eval/messy.yml")
    return name, Path(path)


def load_items(path: Path) -> List[Dict[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["items"]


async def measure(items: List[Dict[str, Any]], model: Path, baseline_model: Path) -> Dict[str, Any]:
    """The report for one labelled set: the project's model, then the baseline on the same texts."""
    texts = [i["text"] for i in items]
    parses, project_ms = await parse_all(model, texts)
    report = score(items, [project_prediction(p) for p in parses])
    baseline_parses, baseline_ms = await parse_all(baseline_model, texts)
    baseline_topics = [topic_of((p.get("intent") or {}).get("name")) for p in baseline_parses]
    report["baseline"] = {"pipeline": BASELINE_NAME, **topic_scores(items, baseline_topics)}
    report["parse_ms"] = {"project": project_ms, "baseline": baseline_ms}
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval", required=True, type=Path)
    parser.add_argument("--report", required=True, type=Path)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument(
        "--slice",
        action="append",
        default=[],
        type=slice_arg,
        metavar="NAME=PATH",
        help="another labelled set, measured and reported on its own under report['slices'][NAME]",
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        baseline_model = train_baseline(Path(tmp))
        report = await measure(load_items(args.eval), args.model, baseline_model)
        slices = {
            name: await measure(load_items(path), args.model, baseline_model)
            for name, path in args.slice
        }
    if slices:
        report["slices"] = slices

    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"== {args.eval}")
    print(table(report))
    print(f"{len(report['errors'])} errors")
    for (name, path), part in zip(args.slice, slices.values(), strict=True):
        print(f"\n== slice {name}: {path}")
        print(table(part))
        print(f"{len(part['errors'])} errors")
    print(f"\nreport written to {args.report}")


if __name__ == "__main__":
    asyncio.run(main())
