"""Starts the Rasa server, the action server and the gateway; waits for each; stops them together.

Used by `make run` (foreground, Ctrl-C stops all three) and by the end-to-end tests (each test run
gets its own ports and databases). Runs with the gateway's Python; Rasa runs from its own
environment (.venv/engine), see DESIGN.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE_BIN = ROOT / ".venv" / "engine" / "bin"
GATEWAY_PYTHON = ROOT / ".venv" / "gateway" / "bin" / "python"
MODEL = ROOT / "models" / "assistant.tar.gz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    name: str
    args: list[str]
    health_url: str
    log: Path
    popen: subprocess.Popen | None = None

    def start(self, env: dict[str, str]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


@dataclass
class Stack:
    """The three processes and the environment they share."""

    var: Path = ROOT / "var"
    rasa_port: int = 5005
    action_port: int = 5055
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        token_file = self.var / "rasa_token"
        self.var.mkdir(parents=True, exist_ok=True)
        if not token_file.exists():
            token_file.write_text(secrets.token_urlsafe(24))
        self.rasa_token = os.environ.get("RASA_TOKEN") or token_file.read_text().strip()
        # One NLG token for the stack's life: a restarted Rasa must still be let in by the gateway.
        self.nlg_token = os.environ.get("NLG_TOKEN") or secrets.token_urlsafe(24)
        logs = self.var / "log"
        self.processes = {
            "rasa": Process(
                "rasa",
                [
                    str(ENGINE_BIN / "rasa"),
                    "run",
                    "--enable-api",
                    "--auth-token",
                    self.rasa_token,
                    "-i",
                    "127.0.0.1",
                    "-p",
                    str(self.rasa_port),
                    "--model",
                    str(MODEL),
                    "--endpoints",
                    "endpoints.yml",
                    "--credentials",
                    "credentials.yml",
                ],
                f"http://127.0.0.1:{self.rasa_port}/status?token={self.rasa_token}",
                logs / "rasa.log",
            ),
            "actions": Process(
                "actions",
                [
                    str(ENGINE_BIN / "rasa"),
                    "run",
                    "actions",
                    "--actions",
                    "actions",
                    "-p",
                    str(self.action_port),
                ],
                f"http://127.0.0.1:{self.action_port}/health",
                logs / "actions.log",
            ),
            "gateway": Process(
                "gateway",
                [str(GATEWAY_PYTHON), "-m", "bot.app"],
                f"http://127.0.0.1:{self.gateway_port}/healthz",
                logs / "gateway.log",
            ),
        }

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["NLG_TOKEN"] = self.nlg_token
        env.setdefault("DATABASE_URL", f"sqlite:///{self.var / 'gateway.db'}")
        env.update(
            RASA_TELEMETRY_ENABLED="false",
            SANIC_HOST="127.0.0.1",
            TF_CPP_MIN_LOG_LEVEL="2",
            RASA_URL=self.rasa_url,
            RASA_PORT=str(self.rasa_port),
            ACTION_PORT=str(self.action_port),
            GATEWAY_HOST=self.gateway_host,
            GATEWAY_PORT=str(self.gateway_port),
            TRACKER_DB=str(self.var / "rasa_tracker.db"),
        )
        env.update(self.extra_env)
        return env

    def start(
        self, names: tuple[str, ...] = ("actions", "gateway", "rasa"), timeout: float = 180
    ) -> None:
        env = self.env()
        for name in names:
            self.processes[name].start(env)
        self.wait(names, timeout)

    def wait(self, names: tuple[str, ...], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                process = self.processes[name]
                if process.healthy():
                    pending.remove(name)
                elif not process.alive():
                    raise RuntimeError(f"{name} exited; see {process.log}")
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not healthy after {timeout:.0f}s: {', '.join(pending)}")
            time.sleep(0.5)

    def stop(self, names: tuple[str, ...] = ("gateway", "rasa", "actions")) -> None:
        for name in names:
            self.processes[name].stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    stack = Stack(
        gateway_host=os.environ.get("GATEWAY_HOST", "127.0.0.1"),
        gateway_port=int(os.environ.get("GATEWAY_PORT", "8000")),
        rasa_port=int(os.environ.get("RASA_PORT", "5005")),
        action_port=int(os.environ.get("ACTION_PORT", "5055")),
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("starting the action server, the gateway and Rasa (loading the model takes ~30 s)...")
    try:
        stack.start()
        print(f"  web chat      {stack.gateway_url}/")
        print(f"  console       {stack.gateway_url}/console")
        print(f"  gateway API   {stack.gateway_url}/webchat/messages")
        print(f"  Rasa          {stack.rasa_url}  (HTTP API token in var/rasa_token)")
        print(f"  actions       http://127.0.0.1:{stack.action_port}")
        print(f"  logs          {stack.var / 'log'}/")
        print("Ctrl-C stops all three.")
        while all(p.alive() for p in stack.processes.values()):
            time.sleep(1)
        print("a process exited; stopping the others", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
