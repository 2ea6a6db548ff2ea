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
   Its connections are kept in a pool: SQLAlchemy 1.4 opens and closes one per session on a
   SQLite file, several times a turn.
5. Rasa opens a new HTTP session, so a new connection, for every call to the action server and
   to `/nlg` (`EndpointConfig.request`): one to three a turn, each with its connect and
   teardown on both sides. One kept session per configuration and event loop serves them all;
   an idle connection is dropped after KEEP_IDLE_S, before the gateway's server drops it (5 s).
6. Rasa's SQL tracker store reads a whole conversation back and counts its events at every turn:
   scripts/tracker_cache.py keeps the trackers a server has just saved while the database shows
   nothing else has changed them.
7. Rasa runs TED's neural network for every prediction, several a turn, even when the rules or
   the memorised stories are sure and TED's answer cannot be picked: scripts/sure_predictions.py
   runs it only when it can matter.
8. Rasa runs its graphs through dask's scheduler, which orders the whole graph anew at every run:
   scripts/plain_graph_run.py runs the same tasks depth first.
9. Rasa's lock on a conversation never serves a turn whose own ticket expired while it waited
   behind the ticket of a server that died: scripts/ticket_lock.py serves it once the tickets
   before it are gone.
10. Rasa's own log lines carry the child's words (the text of a turn the gateway gave up on, at
    ERROR; every message and prediction at DEBUG) unless an anonymisation pipeline (Rasa Pro)
    is present: here each of those values is withheld, at every level.

Run with the engine's Python from the project root: `python -m scripts.rasa_server run ...`
takes the same arguments as `rasa`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from types import SimpleNamespace, TracebackType
from typing import Any

sys.modules["jax"] = None  # before TensorFlow is imported (3. above)

import aiohttp  # noqa: E402
import jsonschema  # noqa: E402
from jsonschema.exceptions import best_match  # noqa: E402
from jsonschema.validators import validator_for  # noqa: E402
from rasa.core import tracker_store  # noqa: E402
from rasa.core.nlg import callback  # noqa: E402
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity  # noqa: E402
from rasa.utils import log_utils  # noqa: E402
from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlalchemy.pool import QueuePool  # noqa: E402

from scripts import plain_graph_run, sure_predictions, ticket_lock, tracker_cache  # noqa: E402

SQLITE_BUSY_TIMEOUT_MS = 10_000
WITHHELD = "[withheld]"
KEEP_IDLE_S = 2.0

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


class _Kept:
    """`async with` a kept session: gives it, and leaves it open."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __aenter__(self) -> aiohttp.ClientSession:
        return self._session

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        return None


_sessions: dict[tuple[Any, ...], aiohttp.ClientSession] = {}


def kept_session(endpoint: EndpointConfig) -> _Kept:
    """`EndpointConfig.session`, kept for the endpoint's headers and credentials (5. above)."""
    auth = endpoint.basic_auth or {}
    key = (
        id(asyncio.get_running_loop()),
        tuple(sorted(endpoint.headers.items())),
        auth.get("username"),
        auth.get("password"),
    )
    session = _sessions.get(key)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            headers=endpoint.headers,
            auth=aiohttp.BasicAuth(auth["username"], auth["password"]) if auth else None,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEP_IDLE_S),
        )
        _sessions[key] = session
    return _Kept(session)


class _Withholding:
    """An anonymisation pipeline as Rasa's log processor uses one (10. above)."""

    def log_run(self, _value: Any) -> str:
        return WITHHELD


def withhold_words_in_logs() -> None:
    """Rasa's log processor (`log_utils._anonymizer`) finds a pipeline that withholds every
    value it would pass on; the rest of Rasa still finds none, so it does no anonymisation work
    per turn (`MessageProcessor.run_anonymization_pipeline`)."""
    plugins = SimpleNamespace(hook=SimpleNamespace(get_anonymization_pipeline=_Withholding))
    log_utils.plugin_manager = lambda: plugins


_engine_kwargs = tracker_store.create_engine_kwargs


def engine_kwargs(url: Any) -> dict[str, Any]:
    """Rasa's engine settings, with a pool of connections for a SQLite file (4. above)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return _engine_kwargs(url)
    # Rasa uses the store from its event loop's thread only; the pool may hand a connection to
    # whichever thread that is.
    return {"poolclass": QueuePool, "connect_args": {"check_same_thread": False}}


def main() -> None:
    tracker_store.create_engine_kwargs = engine_kwargs
    EndpointConfig.session = kept_session
    tracker_cache.install()
    sure_predictions.install()
    plain_graph_run.install()
    ticket_lock.install()
    withhold_words_in_logs()
    event.listen(Engine, "connect", sqlite_pragmas)
    jsonschema.validate = validate
    callback.nlg_request_format = nlg_request
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
