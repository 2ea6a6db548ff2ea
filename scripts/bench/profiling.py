"""`make bench`, the profile: where each process's CPU goes under load, so the next change starts
from data.

py-spy samples each process from outside (ptrace, no change to the process) in a short phase of
its own after the measured levels, so it cannot disturb their numbers. Its raw
(collapsed) stacks are kept in var/bench/profile/<process>.txt (for a flame graph) and summed
here: each function's share of the samples in which the process ran Python, by itself (self) and
with what it called (cumulative).
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from scripts.bench.load import gateway_seats, phase
from scripts.bench.metering import Meter
from scripts.bench.settings import Config
from scripts.bench.turns import LineReplies, Tally, line_turn, webchat_turn
from scripts.stack import GATEWAY_PYTHON

PY_SPY = GATEWAY_PYTHON.parent / "py-spy"
RATE_HZ = 100
TOP = 25


async def record(pids: dict[str, int], seconds: float, folder: Path) -> dict[str, str]:
    """Samples every process for `seconds` at once; returns each one's problem, if it had one."""
    folder.mkdir(parents=True, exist_ok=True)

    async def one(name: str, pid: int) -> tuple[str, str | None]:
        out = folder / f"{name}.txt"
        out.unlink(missing_ok=True)
        spy = await asyncio.create_subprocess_exec(
            str(PY_SPY),
            "record",
            "--format",
            "raw",
            "--function",  # one line per function (its first line), not per line executed
            # Not --nonblocking: without pausing the process py-spy cannot tell a waiting thread
            # from a running one, and the idle event loops and thread pools would fill the
            # profile. A pause per sample is some microseconds, in a phase that measures nothing.
            "--pid",
            str(pid),
            "--duration",
            str(round(seconds)),
            "--rate",
            str(RATE_HZ),
            "--output",
            str(out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, error = await spy.communicate()
        if spy.returncode != 0 or not out.exists():
            return name, error.decode(errors="replace").strip()[-500:] or f"exit {spy.returncode}"
        return name, None

    results = await asyncio.gather(*(one(name, pid) for name, pid in pids.items()))
    return {name: problem for name, problem in results if problem}


async def run(
    web: httpx.AsyncClient, replies: LineReplies, meter: Meter, cfg: Config
) -> dict[str, Any]:
    """cfg.profile_conversations conversations through the gateway at a person's pace; once every
    seat has started (a child's longest pause), each process is sampled for cfg.profile_s."""
    count, seconds, ramp = cfg.profile_conversations, cfg.profile_s, cfg.think_s[1]
    print(
        f"profile: {count} conversations, each process sampled by py-spy for {seconds:.0f} s...",
        flush=True,
    )
    on_web, on_line = Tally(), Tally()
    seats = gateway_seats(
        count,
        lambda u, t: webchat_turn(web, u, t, on_web),
        lambda u, t: line_turn(web, replies, u, t, on_line),
    )
    load = asyncio.create_task(phase(meter, seats, cfg, seed=3000, seconds=ramp + seconds + 2))
    await asyncio.sleep(ramp)
    folder = cfg.out / "profile"
    problems = await record(meter.pids, seconds, folder)
    await load
    profile = {
        "rate_hz": RATE_HZ,
        "seconds": seconds,
        "conversations": count,
        "turns": on_web.answered + on_line.answered,
        "errors": on_web.errors + on_line.errors,
        "fallbacks": on_web.fallbacks + on_line.fallbacks,
        "processes": summaries(folder, list(meter.pids), problems),
    }
    write(cfg.out, profile)
    return profile


def summarise(collapsed: str, top: int = TOP) -> dict[str, Any]:
    """Self and cumulative shares of the samples per function, from py-spy's raw format (one line
    per distinct stack: frames from the root separated by ";", then a space and the count)."""
    self_count: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        samples += int(count)
        self_count[frames[-1]] += int(count)
        for frame in set(frames):  # a recursive function counts once per sample
            cumulative[frame] += int(count)

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {
                "function": frame,
                "self": self_count[frame] / samples,
                "cumulative": cumulative[frame] / samples,
            }
            for frame, _ in counter.most_common(top)
        ]

    return {"samples": samples, "by_self": rows(self_count), "by_cumulative": rows(cumulative)}


def summaries(folder: Path, names: list[str], problems: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in names:
        if name in problems:
            result[name] = {"error": problems[name]}
        else:
            result[name] = summarise((folder / f"{name}.txt").read_text(errors="replace"))
    return result


def text(profile: dict[str, Any]) -> str:
    """profile.txt: per process, the top functions by self share, then by cumulative share."""
    lines = textwrap.wrap(
        f"py-spy, {profile['rate_hz']} samples/s for {profile['seconds']:.0f} s per process, "
        f"{profile['conversations']} conversations at a person's pace; share of the samples in "
        "which the process ran (waiting is not sampled). py-spy sees Python frames only: a "
        "function's self share includes the native code it runs, so an event loop's own share "
        "(serve, asyncio_run, a thread pool's _worker) is the C of uvloop, httptools, the "
        "drivers and the kernel calls it makes",
        width=100,
    )
    for name, summary in profile["processes"].items():
        lines += ["", f"== {name} =="]
        if "error" in summary:
            lines.append(f"  not profiled: {summary['error']}")
            continue
        lines.append(f"  {summary['samples']} samples")
        for key, title in (("by_self", "self"), ("by_cumulative", "cumulative")):
            lines.append(f"  top by {title}:   self   cumul  function")
            for row in summary[key]:
                lines.append(
                    f"  {'':>{len(title) + 9}}{100 * row['self']:5.1f}% "
                    f"{100 * row['cumulative']:5.1f}%  {row['function']}"
                )
    return "\n".join(lines) + "\n"


def write(out: Path, profile: dict[str, Any]) -> None:
    (out / "profile.json").write_text(json.dumps(profile, indent=2, ensure_ascii=False))
    (out / "profile.txt").write_text(text(profile))
