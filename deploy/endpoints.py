"""Writes Rasa's endpoints file for a production process, by scripts/stack.py's rules.

`make run` (scripts/stack.py) runs all three processes on one host and points Rasa at
127.0.0.1; in production the action server and the gateway's `/nlg` are wherever the platform puts
them (a Kubernetes Service, or 127.0.0.1 under systemd), so their URLs come from the environment.
The stores follow scripts/stack.py exactly (README, Configuration): the SQL tracker store on
TRACKER_STORE_URL, else on DATABASE_URL when that is PostgreSQL; the lock store in Redis when
REDIS_URL is set. A SQLite tracker store is put in WAL mode before Rasa starts, as scripts/stack.py
does, since one machine runs two Rasa servers on it (deploy/systemd). Run with the engine's Python
from the project root:

    ACTION_ENDPOINT_URL=http://actions:5055/webhook NLG_URL=http://gateway:8000/nlg \\
    NLG_TOKEN=... DATABASE_URL=postgresql://... python -m deploy.endpoints /run/rasa/endpoints.yml
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from scripts.stack import _Quoted, enable_wal, lock_store, tracker_store, tracker_store_url

REQUIRED = ("ACTION_ENDPOINT_URL", "NLG_URL", "NLG_TOKEN")


def endpoints(env: dict[str, str]) -> dict[str, object]:
    """The endpoints of a Rasa server whose neighbours are at the addresses `env` names."""
    missing = [name for name in REQUIRED if not env.get(name, "").strip()]
    if missing:
        raise ValueError(f"not set: {', '.join(missing)}")
    return {
        "action_endpoint": {"url": env["ACTION_ENDPOINT_URL"].strip()},
        "nlg": {"url": env["NLG_URL"].strip(), "token": env["NLG_TOKEN"].strip()},
        "tracker_store": tracker_store(tracker_store_url(env)),
        "lock_store": lock_store(env.get("REDIS_URL", "").strip()),
    }


def write(path: Path, env: dict[str, str]) -> None:
    """The file, readable by its owner only: it holds NLG_TOKEN and the databases' passwords."""
    text = "# Written by deploy/endpoints.py at each start, from the environment; edits are lost.\n"
    text += yaml.dump(endpoints(env), Dumper=_Quoted, sort_keys=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path, help="where to write Rasa's endpoints file")
    args = parser.parse_args()
    env = dict(os.environ)
    try:
        write(args.path, env)
    except ValueError as exc:
        sys.exit(f"deploy/endpoints.py: {exc}")
    enable_wal(tracker_store_url(env))


if __name__ == "__main__":
    main()
