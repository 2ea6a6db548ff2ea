"""`make bench`, settings: where the bench writes, and what the environment asks for."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench"
CLIENT_TIMEOUT_S = 30


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    quick: bool
    levels: tuple[int, ...]
    phase_s: float
    think_s: tuple[float, float]
    overhead_conversations: int
    profile_conversations: int
    profile_s: float
    burst_conversations: int
    burst_s: float
    train: str  # "auto", "1" (always time a training) or "0" (never)
    parse: bool
    keep: bool
    eval_path: Path
    out: Path

    @classmethod
    def from_env(cls, eval_path: Path, out: Path) -> Config:
        env = os.environ
        quick = env.get("BENCH_QUICK", "0") == "1"
        think = [float(v) for v in env.get("BENCH_THINK_S", "3,12").split(",")]
        return cls(
            quick=quick,
            levels=tuple(int(v) for v in env.get("BENCH_LEVELS", "1,10,50,200").split(",")),
            phase_s=float(env.get("BENCH_PHASE_S", "20" if quick else "90")),
            think_s=(think[0], think[-1]),
            overhead_conversations=int(
                env.get("BENCH_OVERHEAD_CONVERSATIONS", "6" if quick else "40")
            ),
            profile_conversations=int(env.get("BENCH_PROFILE_CONVERSATIONS", "50")),
            profile_s=float(env.get("BENCH_PROFILE_S", "15" if quick else "25")),
            burst_conversations=int(env.get("BENCH_BURST", "200")),
            burst_s=float(env.get("BENCH_BURST_S", "20" if quick else "40")),
            train=env.get("BENCH_TRAIN", "auto"),
            parse=env.get("BENCH_PARSE", "0" if quick else "1") == "1",
            keep=env.get("BENCH_KEEP", "0") == "1",
            eval_path=eval_path,
            out=out,
        )


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def engine_env() -> dict[str, str]:
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
