"""Starts Rasa's own command line without costs that this project does not need.

The first two showed in `make bench` (README "Benchmarks") as most of Rasa's CPU under load:

1. Rasa 3.6 checks every answer of the action server (`RemoteAction._validate_action_result`)
   and every sentence from the gateway's `/nlg` (`CallbackNaturalLanguageGenerator.
   validate_response`) with `jsonschema.validate`, which first checks the *schema itself* against
   the metaschema and builds a new validator, on every call. Both call sites import `validate`
   from `jsonschema` when they run, so replacing it here makes them use one checked validator per
   schema. The instance is still validated exactly as before, with the same errors.
2. For each sentence, Rasa sends `/nlg` the whole tracker with every event of the conversation,
   which grows with each turn (30 KB after five turns), serialised by Rasa and read by the
   gateway. `/nlg` (bot/nlg.py) reads the slots, the latest message, the sender and the channel,
   so the request carries the tracker's state without the event history.

3. TensorFlow's TFLite helpers import JAX if it is installed (TensorFlow 2.12 installs it), which
   Rasa never uses: about 50 MB of memory and half a second of start-up in each Rasa server.
   It is marked absent, so that import takes its own `except ImportError` branch.
4. A SQLite tracker store (the embedded default) is shared by two Rasa servers: each connection
   waits for the other's write instead of failing at once, and in WAL mode (scripts/stack.py
   sets it) commits without waiting for the disk (`synchronous=NORMAL`: a crash of the process
   loses nothing; only a power cut can lose the last turns, as it can the gateway's own SQLite).

Run with the engine's Python from the project root: `python -m scripts.rasa_server run ...`
takes the same arguments as `rasa`.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Any

sys.modules["jax"] = None  # before TensorFlow is imported (3. above)

import jsonschema  # noqa: E402
from jsonschema.exceptions import best_match  # noqa: E402
from jsonschema.validators import validator_for  # noqa: E402
from rasa.core.nlg import callback  # noqa: E402
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

SQLITE_BUSY_TIMEOUT_MS = 10_000

_MAX_SCHEMAS = 64  # Rasa has a handful; the bound only keeps an odd caller from growing it
_validators: dict[str, Any] = {}


def validate(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any) -> None:
    """`jsonschema.validate` with the schema checked and its validator built once."""
    key = json.dumps(
        [schema, repr(cls), repr(args), repr(sorted(kwargs.items()))], sort_keys=True, default=repr
    )
    validator = _validators.get(key)
    if validator is None:
        kind = cls if cls is not None else validator_for(schema)
        kind.check_schema(schema)
        validator = kind(schema, *args, **kwargs)
        if len(_validators) < _MAX_SCHEMAS:
            _validators[key] = validator
    error = best_match(validator.iter_errors(instance))
    if error is not None:
        raise error


def nlg_request(
    utter_action: str, tracker: DialogueStateTracker, output_channel: str, **kwargs: Any
) -> dict[str, Any]:
    """`callback.nlg_request_format`, with the tracker's state but not its event history."""
    return {
        "response": utter_action,
        "id": kwargs.pop("response_id", None),
        "arguments": kwargs,
        "tracker": tracker.current_state(EventVerbosity.NONE),
        "channel": {"name": output_channel},
    }


def sqlite_pragmas(connection: Any, _record: Any) -> None:
    """Every SQLite connection Rasa opens (4. above)."""
    if isinstance(connection, sqlite3.Connection):
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA synchronous=NORMAL")


def main() -> None:
    event.listen(Engine, "connect", sqlite_pragmas)
    jsonschema.validate = validate
    callback.nlg_request_format = nlg_request
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
