"""`make bench`, the stock comparison: Rasa's own `rasa init` demo bot (the mood bot), side by side.

The project's turn p50 is only meaningful against what Rasa alone costs on the same machine in the
same minute, so the demo bot is created with the engine's `rasa init` (it trains itself, offline),
kept under var/bench/stock/<rasa version>/ for later runs, started as a plain
`rasa run --enable-api` with its own files, and driven over its REST channel one conversation at a
time, interleaved with the project's turns (scripts/bench/load.py `overhead_phase`). Its domain has
no custom actions, so it needs no action server.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from scripts.bench.settings import engine_env
from scripts.stack import ENGINE_BIN, Process, free_port

# The mood bot's own stories: greet, a mood, an answer to "did that help?", goodbye.
MOOD_SCRIPTS: tuple[tuple[str, ...], ...] = (
    ("hi", "I am sad", "yes", "bye"),
    ("hello", "great", "bye"),
    ("hey", "I am feeling very sad", "no", "goodbye"),
    ("good morning", "very good", "are you a bot?", "see you later"),
    ("hi there", "unhappy", "yes", "thanks, bye"),
)


def rasa_version() -> str:
    """The engine's Rasa version, without importing Rasa (that takes seconds)."""
    return subprocess.run(
        [
            str(ENGINE_BIN / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('rasa'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def demo_bot(out: Path) -> tuple[Path, dict[str, object]]:
    """The demo bot's directory, created and trained once per Rasa version."""
    version = rasa_version()
    folder = out / "stock" / version
    info: dict[str, object] = {"rasa": version, "dir": str(folder)}
    if any((folder / "models").glob("*.tar.gz")):
        return folder, {**info, "source": "created earlier for this Rasa version"}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"creating Rasa {version}'s demo bot with `rasa init` (trains it)...", flush=True)
    started = time.perf_counter()
    with (out / "stock" / f"init-{version}.log").open("wb") as log:
        subprocess.run(
            [str(ENGINE_BIN / "rasa"), "init", "--no-prompt", "--init-dir", str(folder)],
            cwd=folder.parent,
            env=engine_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return folder, {**info, "init_s": time.perf_counter() - started, "source": "created now"}


def stock_process(folder: Path, log: Path) -> tuple[Process, str]:
    """`rasa run --enable-api` for the demo bot on a free port, with its own endpoints and
    credentials (in-memory tracker store, REST channel); and its URL."""
    port = free_port()
    process = Process(
        "stock",
        [str(ENGINE_BIN / "rasa"), "run", "--enable-api", "-i", "127.0.0.1", "-p", str(port)]
        + ["--model", str(folder / "models")]
        + ["--endpoints", str(folder / "endpoints.yml")]
        + ["--credentials", str(folder / "credentials.yml")],
        f"http://127.0.0.1:{port}/status",
        log,
    )
    return process, f"http://127.0.0.1:{port}"


def start(process: Process, url: str, timeout: float = 300) -> None:
    """Starts the demo bot and waits until it gives a real answer, not only until it listens."""
    # Idle connections kept open longer than the bench's client reuses them, as in the stack.
    process.start({**engine_env(), "SANIC_KEEP_ALIVE_TIMEOUT": "75"})
    deadline = time.monotonic() + timeout
    while True:
        if not process.alive():
            raise RuntimeError(f"the demo bot exited; see {process.log}:\n{process.log_tail()}")
        try:
            answer = httpx.post(
                f"{url}/webhooks/rest/webhook",
                json={"sender": f"bench-stock-wait-{uuid.uuid4().hex[:8]}", "message": "hi"},
                timeout=10,
            )
            if answer.status_code == 200 and answer.json():
                return
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the demo bot gave no answer after {timeout:.0f}s; see {process.log}"
            )
        time.sleep(0.5)


def mood_turns() -> Iterator[tuple[str, str]]:
    """(sender, text) of the demo bot's conversations one after another, each with a new sender."""
    for number in itertools.count():
        user = f"bench-stock-{number}-{uuid.uuid4().hex[:8]}"
        for text in MOOD_SCRIPTS[number % len(MOOD_SCRIPTS)]:
            yield user, text
