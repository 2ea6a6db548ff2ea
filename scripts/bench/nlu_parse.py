"""`make bench`, NLU part: parse time per message, project pipeline against Rasa's stock one.

Runs in the engine environment (started by scripts/bench/offline.py) and is exactly `make eval`'s
timing: scripts/eval.py's `parse_all` over the evaluation set with the project's model, then with
the stock baseline that `train_baseline` trains on the same NLU data. Writes one JSON object to
--out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from pathlib import Path

import yaml

from scripts.eval import MODEL, parse_all, train_baseline


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval", required=True, type=Path)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    texts = [i["text"] for i in yaml.safe_load(args.eval.read_text(encoding="utf-8"))["items"]]
    _, project_ms = await parse_all(args.model, texts)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        baseline = train_baseline(Path(tmp))
        baseline_train_s = time.perf_counter() - started
        _, baseline_ms = await parse_all(baseline, texts)
    result = {
        "project": project_ms,
        "baseline": baseline_ms,
        "messages": len(texts),
        "eval": str(args.eval),
        "baseline_train_s": baseline_train_s,
    }
    args.out.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
