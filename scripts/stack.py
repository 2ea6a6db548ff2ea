"""Starts the Rasa server, the action server and the gateway; waits for each; stops them together.

Used by `make run` (foreground; scripts/supervisor.py restarts whichever process exits or hangs,
Ctrl-C stops all three) and by the end-to-end tests (each test run gets its own ports and
databases; `Stack.start`/`stop` without supervision). Runs with the gateway's Python; Rasa runs
from its own environment (.venv/engine), see DESIGN.md.

A started stack is one whose gateway is ready (`/healthz` 200: it sees Rasa and the action server
up, so the next message gets a real answer), not only one whose processes answer their own
health checks; the gateway alone is alive when `/livez` answers.

`make run` starts RASA_SERVERS Rasa servers (default 2: Rasa does a turn's work on one core, and
this machine has two); the gateway shares the children out between them (bot/rasa_client.py). They
share the tracker store (on SQLite in WAL mode, so one's reads never wait for the other's writes).

Rasa's endpoints are written at each start into `<var>/endpoints.yml` from the environment
(README, Configuration): the tracker store from TRACKER_STORE_URL, else the gateway's DATABASE_URL
when that is PostgreSQL, else the SQLite file TRACKER_DB; the lock store in Redis when REDIS_URL
is set, else in memory; the gateway's `/nlg` at NLG_URL, else this stack's gateway. The
repository's endpoints.yml is the embedded default, for Rasa's own commands (`make story-test`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from sqlalchemy.engine import make_url

if __package__ in (None, ""):  # `python scripts/stack.py` (make run): import as the tests do
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.supervisor import Policy, Supervisor, die_with_parent  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENGINE_BIN = ROOT / ".venv" / "engine" / "bin"
GATEWAY_PYTHON = ROOT / ".venv" / "gateway" / "bin" / "python"
MODEL = ROOT / "models" / "assistant.tar.gz"
# Rasa's lock on a conversation, in seconds (Rasa's own default is 60): a few times RASA_TIMEOUT_S.
TICKET_LOCK_LIFETIME_S = 10


def tracker_store_url(env: dict[str, str]) -> str:
    """Where Rasa keeps its trackers; the gateway's Settings.tracker_store_url follows the same rule
    (it purges and erases Rasa's events there)."""
    if env.get("TRACKER_STORE_URL", "").strip():
        return env["TRACKER_STORE_URL"].strip()
    database_url = env.get("DATABASE_URL", "").strip()
    if database_url.startswith("postgresql"):
        return database_url
    return f"sqlite:///{env.get('TRACKER_DB') or ROOT / 'var' / 'rasa_tracker.db'}"


def tracker_store(url: str) -> dict[str, object]:
    """Rasa 3.6's SQLTrackerStore settings for a SQLAlchemy URL (Rasa connects with psycopg2)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return {"type": "SQL", "dialect": "sqlite", "db": parsed.database}
    if backend != "postgresql":
        raise ValueError(f"unsupported tracker store: {backend}")
    config: dict[str, object] = {"type": "SQL", "dialect": "postgresql"}
    for key, value in (
        ("url", parsed.host),
        ("port", parsed.port),
        ("db", parsed.database),
        ("username", parsed.username),
        ("password", parsed.password),
    ):
        if value is not None:
            config[key] = value
    if parsed.query:
        config["query"] = {k: v if isinstance(v, str) else list(v) for k, v in parsed.query.items()}
    return config


def lock_store(redis_url: str) -> dict[str, object]:
    """Rasa 3.6's RedisLockStore settings for redis://[user:password@]host[:port][/db]."""
    if not redis_url:
        return {"type": "in_memory"}
    parsed = urlsplit(redis_url)
    if parsed.scheme not in ("redis", "rediss"):
        raise ValueError(f"REDIS_URL must be redis:// or rediss://, not {parsed.scheme}://")
    config: dict[str, object] = {
        "type": "redis",
        "url": parsed.hostname or "localhost",
        "port": parsed.port or 6379,
        "db": int(parsed.path.strip("/") or 0),
    }
    if parsed.username:
        config["username"] = unquote(parsed.username)
    if parsed.password:
        config["password"] = unquote(parsed.password)
    if parsed.scheme == "rediss":
        config["use_ssl"] = True
    return config


def nlg_url(env: dict[str, str]) -> str:
    """The gateway's `/nlg` as Rasa reaches it: NLG_URL (deploy/endpoints.py), else this stack's
    own gateway. Replicas behind a balancer name the balancer, so a Rasa server still renders its
    sentences while its own gateway is down (tests/scale)."""
    return env.get("NLG_URL", "").strip() or f"http://127.0.0.1:{env['GATEWAY_PORT']}/nlg"


def rasa_endpoints(env: dict[str, str]) -> dict[str, object]:
    """The contents of Rasa's endpoints file for a stack running with `env`."""
    return {
        "action_endpoint": {"url": f"http://127.0.0.1:{env['ACTION_PORT']}/webhook"},
        "nlg": {"url": nlg_url(env), "token": env["NLG_TOKEN"]},
        "tracker_store": tracker_store(tracker_store_url(env)),
        "lock_store": lock_store(env.get("REDIS_URL", "").strip()),
    }


class _Quoted(yaml.SafeDumper):
    """Strings with a $ double-quoted: Rasa expands ${...} in plain scalars only."""


_Quoted.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style='"' if "$" in value else None
    ),
)


def write_endpoints(path: Path, env: dict[str, str]) -> None:
    """Writes Rasa's endpoints file, readable only by its owner (it holds tokens and passwords)."""
    text = "# Written by scripts/stack.py at each start, from the environment; edits are lost.\n"
    text += yaml.dump(rasa_endpoints(env), Dumper=_Quoted, sort_keys=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)


_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    """The lowest port the kernel gives to outgoing connections and to bind(0)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing else will take between our choosing it and our server binding it.

    A port from bind(0) is one the kernel may hand to the next outgoing connection of a stack
    already running, and the server started on it then dies with "address in use". Ports below
    the ephemeral range are never handed out by the kernel, and this process never hands one out
    twice.
    """
    high = _ephemeral_low()
    low = max(1024, high - 12000)
    for _ in range(200):
        port = random.randrange(low, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port between {low} and {high}")


def answers(url: str, timeout: float = 2) -> bool:
    """True when `url` answers 200 within `timeout` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Process:
    name: str
    args: list[str]
    health_url: str
    log: Path
    popen: subprocess.Popen | None = None
    # Variables this process alone gets unless the environment sets them.
    defaults: dict[str, str] = field(default_factory=dict)

    def start(self, env: dict[str, str], preexec: Callable[[], None] | None = None) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env={**self.defaults, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with all it started
                preexec_fn=preexec,
            )

    def healthy(self, timeout: float = 2) -> bool:
        return answers(self.health_url, timeout)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def exit_status(self) -> int | None:
        """The exit code, or minus the signal that ended it; None while it runs."""
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the log, so a failure names its cause where it is reported (CI)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, number)

    def kill(self) -> None:
        """At once, with everything it started (a hung process would not listen to SIGTERM)."""
        if not self.alive():
            return
        self._signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if not self.alive():
            return
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)  # a stopped (SIGSTOP) process acts on SIGTERM only now
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


def rasa_servers(env: dict[str, str]) -> int:
    """How many Rasa servers a stack runs (RASA_SERVERS, default 2)."""
    count = int(env.get("RASA_SERVERS", "").strip() or 2)
    if count < 1:
        raise ValueError("RASA_SERVERS must be 1 or more")
    return count


def enable_wal(tracker_url: str) -> None:
    """Puts a SQLite tracker store in WAL mode (it stays so) before its Rasa servers start."""
    parsed = make_url(tracker_url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(parsed.database)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


@dataclass
class Stack:
    """The processes and the environment they share: the action server, the gateway, and the Rasa
    servers "rasa" (on `rasa_port`), "rasa2" (on the first of `more_rasa_ports`)..."""

    var: Path = ROOT / "var"
    rasa_port: int = 5005
    action_port: int = 5055
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    extra_env: dict[str, str] = field(default_factory=dict)
    # The other Rasa servers' ports; by default the ports after `rasa_port`.
    more_rasa_ports: list[int] | None = None
    processes: dict[str, Process] = field(default_factory=dict)

    @classmethod
    def on_free_ports(cls, var: Path, extra_env: dict[str, str]) -> Stack:
        """A stack beside others (tests, benchmarks, replicas): each process on a free port."""
        count = rasa_servers({**os.environ, **extra_env})
        return cls(
            var=var,
            rasa_port=free_port(),
            action_port=free_port(),
            gateway_port=free_port(),
            extra_env=extra_env,
            more_rasa_ports=[free_port() for _ in range(count - 1)],
        )

    def __post_init__(self) -> None:
        token_file = self.var / "rasa_token"
        self.var.mkdir(parents=True, exist_ok=True)
        if not token_file.exists():
            token_file.write_text(secrets.token_urlsafe(24))
        self.rasa_token = os.environ.get("RASA_TOKEN") or token_file.read_text().strip()
        # One NLG token for the stack's life: a restarted Rasa must still be let in by the gateway.
        self.nlg_token = os.environ.get("NLG_TOKEN") or secrets.token_urlsafe(24)
        logs = self.var / "log"
        if self.more_rasa_ports is None:
            count = rasa_servers({**os.environ, **self.extra_env})
            self.more_rasa_ports = [self.rasa_port + n for n in range(1, count)]
        self.processes = {
            name: self._rasa(name, port)
            for name, port in zip(self.rasa_names, self.rasa_ports, strict=True)
        }
        self.processes.update(
            {
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
                    f"http://127.0.0.1:{self.gateway_port}/livez",
                    logs / "gateway.log",
                ),
            }
        )

    def _rasa(self, name: str, port: int) -> Process:
        return Process(
            name,
            [
                str(ENGINE_BIN / "python"),
                "-m",
                "scripts.rasa_server",  # Rasa with cheap schema checks: see that module
                "run",
                "--enable-api",
                # one argument: a token starting with "-" would be read as an option
                f"--auth-token={self.rasa_token}",
                "-i",
                "127.0.0.1",
                "-p",
                str(port),
                "--model",
                str(MODEL),
                "--endpoints",
                str(self.endpoints_file),
                "--credentials",
                "credentials.yml",
            ],
            f"http://127.0.0.1:{port}/status?token={self.rasa_token}",
            self.var / "log" / f"{name}.log",
            defaults=self._rasa_defaults(),
        )

    def _rasa_defaults(self) -> dict[str, str]:
        """Rasa's lock on a conversation lasts TICKET_LOCK_LIFETIME_S: a server that dies holding
        one (in Redis, shared) keeps that child from every server, its own restart too, this
        long, instead of Rasa's minute; the gateway sends a child's turns one at a time, so the
        lock need only outlive one turn (scripts/ticket_lock.py).
        Several servers get a core each: TensorFlow's own threads would only contend for them
        (its ops here are tiny), and glibc's per-thread heaps would only grow each one. Only Rasa
        gets these: they make Rasa's command line load TensorFlow (the action server's `rasa run
        actions` too, 120 MB → 490 MB)."""
        lock = {"TICKET_LOCK_LIFETIME": str(TICKET_LOCK_LIFETIME_S)}
        if len(self.rasa_ports) < 2:
            return lock
        return {
            **lock,
            "TF_INTRA_OP_PARALLELISM_THREADS": "1",
            "TF_INTER_OP_PARALLELISM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
        }

    @property
    def rasa_ports(self) -> list[int]:
        return [self.rasa_port, *(self.more_rasa_ports or [])]

    @property
    def rasa_names(self) -> list[str]:
        # Imported here: deploy/endpoints.py imports this module in the engine image, without bot/.
        from bot.config import rasa_parts

        return rasa_parts(len(self.rasa_ports))

    @property
    def names(self) -> tuple[str, ...]:
        """Every process, in the order they start."""
        return ("actions", "gateway", *self.rasa_names)

    @property
    def endpoints_file(self) -> Path:
        return self.var / "endpoints.yml"

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
            # Rasa's and the action server's Sanic must keep idle connections open longer than
            # their clients (aiohttp 15 s, httpx 5 s) reuse them, or a reused connection is found
            # closed mid-request and the turn is lost.
            SANIC_KEEP_ALIVE_TIMEOUT="75",
            TF_CPP_MIN_LOG_LEVEL="2",
            RASA_URL=",".join(f"http://127.0.0.1:{port}" for port in self.rasa_ports),
            RASA_PORT=str(self.rasa_port),
            ACTION_PORT=str(self.action_port),
            GATEWAY_HOST=self.gateway_host,
            GATEWAY_PORT=str(self.gateway_port),
            TRACKER_DB=str(self.var / "rasa_tracker.db"),
        )
        env.update(self.extra_env)
        # Rasa and the gateway must agree on where Rasa's words are (the gateway purges them).
        env["TRACKER_STORE_URL"] = tracker_store_url(env)
        return env

    def start(self, names: tuple[str, ...] | None = None, timeout: float = 180) -> None:
        names = self.names if names is None else names
        env = self.env()
        if set(names) & set(self.rasa_names):
            write_endpoints(self.endpoints_file, env)
            enable_wal(env["TRACKER_STORE_URL"])
        for name in names:
            self.processes[name].start(env)
        self.wait(names, timeout)

    def wait(self, names: tuple[str, ...], timeout: float) -> None:
        """Until each of `names` answers its health check and then, when all three run, until
        the gateway is ready: a restarted Rasa is only back once the gateway has seen it."""
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                process = self.processes[name]
                if process.healthy():
                    pending.remove(name)
                elif not process.alive():
                    raise RuntimeError(
                        f"{name} exited; see {process.log}, which ends:\n{process.log_tail()}"
                    )
            if pending and time.monotonic() > deadline:
                tails = "\n".join(
                    f"{name}'s log ends:\n{self.processes[name].log_tail()}" for name in pending
                )
                raise RuntimeError(
                    f"not healthy after {timeout:.0f}s: {', '.join(pending)}\n{tails}"
                )
            if pending:
                time.sleep(0.5)
        if all(process.alive() for process in self.processes.values()):
            while not self.ready():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway not ready after {timeout:.0f}s: {self.why()}")
                time.sleep(0.2)

    def ready(self) -> bool:
        """The gateway gives real answers (its /healthz: Rasa and the action server are up)."""
        return answers(f"{self.gateway_url}/healthz")

    def why(self) -> str:
        try:
            with urllib.request.urlopen(f"{self.gateway_url}/healthz", timeout=2) as response:
                return response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as error:
            return str(error)

    def stop(self, names: tuple[str, ...] | None = None) -> None:
        for name in ("gateway", *self.rasa_names, "actions") if names is None else names:
            self.processes[name].stop()


def _pid_files(stack: Stack) -> Callable[[str], None]:
    """Restarts one process and writes its pid to <var>/run/<name>.pid (operators, tests)."""
    folder = stack.var / "run"
    folder.mkdir(parents=True, exist_ok=True)
    env = stack.env()

    def start(name: str) -> None:
        process = stack.processes[name]
        process.start(env, preexec=die_with_parent)
        (folder / f"{name}.pid").write_text(f"{process.popen.pid}\n")

    return start


def _say(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bot.config import refuse_unsafe_production

    refuse_unsafe_production(os.environ)
    stack = Stack(
        var=Path(os.environ.get("STACK_VAR_DIR") or ROOT / "var"),
        gateway_host=os.environ.get("GATEWAY_HOST", "127.0.0.1"),
        gateway_port=int(os.environ.get("GATEWAY_PORT", "8000")),
        rasa_port=int(os.environ.get("RASA_PORT", "5005")),
        action_port=int(os.environ.get("ACTION_PORT", "5055")),
    )
    for ending in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(ending, lambda *_: sys.exit(0))
    print("starting the action server, the gateway and Rasa (loading the model takes ~30 s)...")
    start = _pid_files(stack)
    supervisor = Supervisor(stack.processes, start, Policy.from_env(dict(os.environ)), _say)
    try:
        write_endpoints(stack.endpoints_file, stack.env())
        enable_wal(stack.env()["TRACKER_STORE_URL"])
        for name in stack.names:
            start(name)
        print(f"  web chat      {stack.gateway_url}/")
        print(f"  console       {stack.gateway_url}/console")
        print(f"  gateway API   {stack.gateway_url}/webchat/messages")
        print(f"  health        {stack.gateway_url}/healthz")
        for name, port in zip(stack.rasa_names, stack.rasa_ports, strict=True):
            print(f"  {name:<13} http://127.0.0.1:{port}  (token in {stack.var / 'rasa_token'})")
        print(f"  actions       http://127.0.0.1:{stack.action_port}")
        print(f"  logs          {stack.var / 'log'}/")
        print("A process that exits or hangs is restarted on its own. Ctrl-C stops all three.")
        supervisor.run()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
