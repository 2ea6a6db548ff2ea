"""The supervisor of `make run` (scripts/supervisor.py) on tiny real processes and a clock of its
own: only the process that exited or hung is restarted, with a growing backoff that resets after
a stay up; a process still starting is given its grace; each restart says why, with its log."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from scripts.stack import Process, answers, free_port
from scripts.supervisor import Policy, Supervisor, describe

POLICY = Policy(
    backoff_first_s=1,
    backoff_max_s=8,
    reset_after_s=100,
    hung_after_s=30,
    start_grace_s=200,
    health_timeout_s=0.5,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def program(tmp_path: Path, name: str, code: str, health_url: str = "") -> Process:
    return Process(
        name,
        [sys.executable, "-c", code],
        health_url or f"http://127.0.0.1:{free_port()}/",  # nothing listens there
        tmp_path / f"{name}.log",
    )


def server(tmp_path: Path, name: str) -> Process:
    """A process with a health check that answers: a tiny HTTP server that, like Rasa's and the
    gateway's, handles SIGTERM itself (so a stopped one acts on it only once continued)."""
    port = free_port()
    code = (
        "import http.server as h, signal, sys; "
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
        f"h.HTTPServer(('127.0.0.1', {port}), h.SimpleHTTPRequestHandler).serve_forever()"
    )
    return program(tmp_path, name, code, f"http://127.0.0.1:{port}/")


def supervised(processes: dict[str, Process], clock: Clock, policy: Policy = POLICY):
    said: list[str] = []
    for process in processes.values():
        process.start(dict(os.environ))
    supervisor = Supervisor(
        processes,
        lambda name: processes[name].start(dict(os.environ)),
        policy,
        said.append,
        clock,
    )
    return supervisor, said


def until(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stopped():
    """Processes to stop after the test, whatever happened."""
    processes: list[Process] = []
    yield processes
    for process in processes:
        process.stop()


def test_only_the_exited_one_is_restarted_with_1_2_4_8_8_seconds_between(tmp_path, clock, stopped):
    crashing = program(
        tmp_path, "crashing", "print('out of memory, giving up'); raise SystemExit(3)"
    )
    steady = program(tmp_path, "steady", "import time; time.sleep(120)")
    stopped += [crashing, steady]
    supervisor, said = supervised({"crashing": crashing, "steady": steady}, clock)
    steady_pid = steady.popen.pid

    waits = []
    for _ in range(5):
        until(lambda: not crashing.alive())
        supervisor.check()
        restart_at = supervisor.watches["crashing"].restart_at
        waits.append(restart_at - clock.now)
        clock.now = restart_at - 0.1
        supervisor.check()  # not before its time
        assert not crashing.alive() and supervisor.watches["crashing"].restart_at == restart_at
        clock.now = restart_at
        supervisor.check()
    assert waits == [1, 2, 4, 8, 8]
    assert steady.alive() and steady.popen.pid == steady_pid  # the others keep running
    exits = [line for line in said if line.startswith("crashing exited")]
    assert len(exits) == 5
    assert "exit code 3" in exits[0] and "out of memory, giving up" in exits[0]
    assert said.count("crashing restarted (restart 1 in a row)") == 1
    assert not any(line.startswith("steady") for line in said)


def test_the_backoff_starts_again_after_a_stay_up(tmp_path, clock, stopped):
    flaky = program(tmp_path, "flaky", "import time; time.sleep(120)")
    stopped.append(flaky)
    supervisor, _ = supervised({"flaky": flaky}, clock, POLICY)
    watch = supervisor.watches["flaky"]
    watch.restarts = 3  # it has crashed three times in a row
    clock.now += POLICY.reset_after_s - 1
    supervisor.check()
    assert watch.restarts == 3
    clock.now += 1
    supervisor.check()  # up for reset_after_s
    assert watch.restarts == 0
    flaky.kill()
    supervisor.check()
    assert watch.restart_at - clock.now == POLICY.backoff_first_s
    assert "signal SIGKILL" in describe(flaky.exit_status())


def test_a_hung_process_is_killed_and_replaced(tmp_path, clock, stopped):
    hung = server(tmp_path, "hung")
    stopped.append(hung)
    supervisor, said = supervised({"hung": hung}, clock)
    until(hung.healthy)
    supervisor.check()
    assert said == ["hung is up (0 s after its start)"]
    first = hung.popen.pid
    os.kill(first, signal.SIGSTOP)
    supervisor.check()  # failing from now
    clock.now += POLICY.hung_after_s - 1
    supervisor.check()
    assert hung.alive() and hung.popen.pid == first  # not yet
    clock.now += 1
    supervisor.check()
    assert not hung.alive() and hung.exit_status() == -signal.SIGKILL
    assert any(
        line.startswith("hung hung (not answering its health check for 30 s)") for line in said
    )
    clock.now += POLICY.backoff_first_s
    supervisor.check()
    assert hung.popen.pid != first
    until(hung.healthy)


def test_a_process_still_starting_gets_its_grace_not_the_hang_limit(tmp_path, clock, stopped):
    loading = program(tmp_path, "loading", "import time; time.sleep(120)")  # never healthy
    stopped.append(loading)
    supervisor, said = supervised({"loading": loading}, clock)
    first = loading.popen.pid
    supervisor.check()
    clock.now += POLICY.hung_after_s * 3
    supervisor.check()
    assert loading.alive() and loading.popen.pid == first
    clock.now += POLICY.start_grace_s
    supervisor.check()
    assert not loading.alive()
    assert any("hung (not up for" in line for line in said)


def test_a_stopped_process_still_stops(tmp_path, stopped):
    """Ctrl-C while a process is SIGSTOPped: SIGTERM alone would wait for ever."""
    frozen = server(tmp_path, "frozen")
    stopped.append(frozen)
    frozen.start(dict(os.environ))
    until(frozen.healthy)
    os.kill(frozen.popen.pid, signal.SIGSTOP)
    started = time.monotonic()
    frozen.stop()
    assert not frozen.alive() and time.monotonic() - started < 10
    assert not answers(frozen.health_url, 0.5)
