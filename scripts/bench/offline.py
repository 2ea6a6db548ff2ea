"""`make bench`, before the stack: the model's training time and `make eval`'s parse time."""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.bench.settings import ROOT, Config, engine_env, loadavg
from scripts.stack import ENGINE_BIN

TRAINING_INPUTS = (
    "config.yml",
    "domain.yml",
    "data/*.yml",
    "data/nlu/*.yml",
    "components/*.py",
    "components/lexicon/*.yml",
)


def training_inputs_digest() -> str:
    digest = hashlib.sha256()
    for pattern in TRAINING_INPUTS:
        for path in sorted(ROOT.glob(pattern)):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def training_time(cfg: Config) -> dict[str, Any]:
    """A real training of the project model, timed once per version of its inputs: into a
    temporary --out and with an empty Rasa cache, so nothing is reused from earlier trainings.
    models/ is left alone. The result is kept in var/bench/train.json with the inputs' digest."""
    record = cfg.out / "train.json"
    digest = training_inputs_digest()
    if record.exists() and cfg.train != "1":
        cached = json.loads(record.read_text())
        if cached.get("inputs_sha256") == digest:
            return {**cached, "source": "timed earlier for these training inputs"}
    if cfg.train == "0" or (cfg.quick and cfg.train != "1"):
        return {"train_s": None, "source": "skipped (no timing for these training inputs)"}
    print("timing a training of the project model (takes a few minutes)...", flush=True)
    with tempfile.TemporaryDirectory(dir=cfg.out) as tmp:
        env = {**engine_env(), "RASA_CACHE_DIRECTORY": str(Path(tmp) / "cache")}
        before = loadavg()
        started = time.perf_counter()
        with (cfg.out / "train.log").open("wb") as log:
            subprocess.run(
                [str(ENGINE_BIN / "rasa"), "train", "--fixed-model-name", "assistant"]
                + ["--out", str(Path(tmp) / "models"), "--quiet"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
            )
        seconds = time.perf_counter() - started
    result = {
        "train_s": seconds,
        "inputs_sha256": digest,
        "measured_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_before": before,
    }
    record.write_text(json.dumps(result, indent=2))
    return {**result, "source": "timed in this run"}


def parse_time(cfg: Config) -> dict[str, Any]:
    """`make eval`'s parse time per message (scripts/bench/nlu_parse.py, in the engine's env)."""
    if not cfg.parse:
        return {"project": None, "baseline": None, "source": "skipped"}
    if not cfg.eval_path.exists():
        return {"project": None, "baseline": None, "source": f"no eval set at {cfg.eval_path}"}
    print("timing NLU parses, project pipeline and baseline (about two minutes)...", flush=True)
    result = cfg.out / "parse.json"
    with (cfg.out / "parse.log").open("wb") as log:
        subprocess.run(
            [str(ENGINE_BIN / "python"), "-m", "scripts.bench.nlu_parse"]
            + ["--eval", str(cfg.eval_path), "--out", str(result)],
            cwd=ROOT,
            env=engine_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return {**json.loads(result.read_text()), "source": "measured in this run"}
