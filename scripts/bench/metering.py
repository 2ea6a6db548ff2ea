"""`make bench`, metering: each process's resident memory and CPU time, read from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()  # fields from the 3rd on; the name may hold spaces


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (a server may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def _sum_kb_mb(pids: list[int], file: str, key: str) -> float:
    """The sum over `pids` of the kB line `key` of /proc/<pid>/`file`, in MB."""
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
                if line.startswith(key):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def rss_mb(pids: list[int]) -> float:
    return _sum_kb_mb(pids, "status", "VmRSS:")


def pss_mb(pids: list[int]) -> float:
    """Proportional set size: a page shared by n processes counts 1/n in each (the two Rasa
    servers map the same TensorFlow libraries, about 250 MB, which RSS counts in full in both)."""
    return _sum_kb_mb(pids, "smaps_rollup", "Pss:")


def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        if fields := _stat(pid):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


class Meter:
    """Samples the stack's resident memory every half second; keeps each process's peak."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.trees = {name: process_tree(pid) for name, pid in pids.items()}
        self.peak: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    def rss(self) -> dict[str, float]:
        """Each process's RSS; "total" is what they all take from the machine (the sum of their
        PSS: shared pages once), "total_rss" the plain sum of their RSS."""
        now = {name: rss_mb(tree) for name, tree in self.trees.items()}
        now["total_rss"] = sum(now.values())
        now["total"] = sum(pss_mb(tree) for tree in self.trees.values())
        return now

    def cpu(self) -> dict[str, float]:
        return {name: cpu_s(tree) for name, tree in self.trees.items()}

    def reset_peak(self) -> dict[str, float]:
        peak, self.peak = self.peak, {}
        return peak

    async def _sample(self) -> None:
        while True:
            for name, value in self.rss().items():
                self.peak[name] = max(self.peak.get(name, 0.0), value)
            await asyncio.sleep(0.5)

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
