"""Keeps every process of the stack running: the one that exits or hangs is replaced, alone.

A helpline runs unattended at night, so `make run` must not stop the gateway (and with it the
fail-safe answer and the console) because Rasa died. Each process is watched on its own:

- exited: restarted after a backoff of 1 s, 2 s, 4 s ... at most `backoff_max_s`; the backoff
  starts again at 1 s once a process has stayed up `reset_after_s`.
- hung: its health check has failed for `hung_after_s` → killed (its whole process group) and
  restarted the same way. A process that has not yet been healthy since it started (Rasa loading
  its model) is given `start_grace_s` instead: slow is not hung.

Every restart is logged with the exit code or signal and the end of that process's log.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Watchable(Protocol):
    """What the supervisor needs of a process (scripts/stack.py's Process)."""

    name: str

    def alive(self) -> bool: ...

    def healthy(self, timeout: float = 2) -> bool: ...

    def exit_status(self) -> int | None: ...

    def kill(self) -> None: ...

    def log_tail(self, lines: int = 40) -> str: ...


@dataclass(frozen=True)
class Policy:
    backoff_first_s: float = 1.0
    backoff_max_s: float = 60.0
    reset_after_s: float = 180.0
    hung_after_s: float = 30.0
    start_grace_s: float = 300.0
    health_timeout_s: float = 5.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Policy:
        """SUPERVISOR_* variables (README, "make run"); tests shorten the waits."""

        def number(name: str, default: float) -> float:
            value = env.get(f"SUPERVISOR_{name}", "").strip()
            return float(value) if value else default

        return cls(
            backoff_first_s=number("BACKOFF_FIRST_S", cls.backoff_first_s),
            backoff_max_s=number("BACKOFF_MAX_S", cls.backoff_max_s),
            reset_after_s=number("RESET_AFTER_S", cls.reset_after_s),
            hung_after_s=number("HUNG_AFTER_S", cls.hung_after_s),
            start_grace_s=number("START_GRACE_S", cls.start_grace_s),
            health_timeout_s=number("HEALTH_TIMEOUT_S", cls.health_timeout_s),
        )

    def backoff(self, restarts: int) -> float:
        """The wait before restart number `restarts + 1` in a row."""
        return min(self.backoff_max_s, self.backoff_first_s * 2 ** min(restarts, 30))


def describe(status: int | None) -> str:
    """An exit status as a person reads it: "exit code 1", "signal SIGKILL"."""
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:
            return f"signal {-status}"
    return f"exit code {status}"


@dataclass
class Watch:
    """One process as the supervisor sees it."""

    process: Watchable
    started_at: float
    restarts: int = 0  # in a row, without `reset_after_s` of being up in between
    healthy_since_start: bool = False
    failing_since: float | None = None
    restart_at: float | None = None  # set while it waits out its backoff


@dataclass
class Supervisor:
    processes: dict[str, Watchable]
    start: Callable[[str], None]  # (re)starts one process by name
    policy: Policy = field(default_factory=Policy)
    say: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic
    watches: dict[str, Watch] = field(default_factory=dict)

    def __post_init__(self) -> None:
        now = self.clock()
        self.watches = {name: Watch(p, now) for name, p in self.processes.items()}

    def check(self) -> None:
        """One look at every process; restarts what is due. Called about once a second."""
        for name, watch in self.watches.items():
            self._check(name, watch)

    def _check(self, name: str, watch: Watch) -> None:
        now = self.clock()
        if watch.restart_at is not None:
            if now >= watch.restart_at:
                self._start(name, watch, now)
            return
        process = watch.process
        if not process.alive():
            self._lost(name, watch, f"exited ({describe(process.exit_status())})", now)
            return
        if now - watch.started_at >= self.policy.reset_after_s:
            watch.restarts = 0
        if process.healthy(self.policy.health_timeout_s):
            if not watch.healthy_since_start:
                self.say(f"{name} is up ({now - watch.started_at:.0f} s after its start)")
            watch.healthy_since_start = True
            watch.failing_since = None
            return
        watch.failing_since = watch.failing_since or now
        limit = self.policy.hung_after_s if watch.healthy_since_start else self.policy.start_grace_s
        failing = now - watch.failing_since
        if failing >= limit:
            process.kill()
            how = "not answering its health check" if watch.healthy_since_start else "not up"
            self._lost(name, watch, f"hung ({how} for {failing:.0f} s), killed", now)

    def _lost(self, name: str, watch: Watch, what: str, now: float) -> None:
        delay = self.policy.backoff(watch.restarts)
        tail = "\n".join("    " + line for line in watch.process.log_tail(20).splitlines())
        self.say(f"{name} {what}; restarting it in {delay:.0f} s. Its log ends:\n{tail}")
        watch.restart_at = now + delay

    def _start(self, name: str, watch: Watch, now: float) -> None:
        watch.restarts += 1
        watch.restart_at = None
        watch.started_at = now
        watch.healthy_since_start = False
        watch.failing_since = None
        try:
            self.start(name)
        except OSError as error:  # e.g. the program is gone; try again later, never give up
            self._lost(name, watch, f"could not be started ({error})", now)
            return
        self.say(f"{name} restarted (restart {watch.restarts} in a row)")

    def run(self, every_s: float = 1.0) -> None:
        """Watches until interrupted (KeyboardInterrupt, or SystemExit from a signal handler)."""
        while True:
            self.check()
            time.sleep(every_s)


def die_with_parent() -> None:
    """For Popen's preexec_fn: the child is killed if the supervisor itself is (Linux), so even
    a SIGKILLed `make run` leaves nothing behind."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
