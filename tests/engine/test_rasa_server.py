"""The cheap schema check Rasa runs with (scripts/rasa_server.py) must judge exactly as Rasa's."""

from __future__ import annotations

import logging
from typing import Any

import jsonschema
import pytest
import structlog
from rasa.core.actions.action import RemoteAction
from rasa.core.nlg.callback import nlg_response_format_spec
from rasa.utils import log_utils

from scripts import rasa_server

ACTION_SCHEMA = RemoteAction("action_x", None).action_response_format_spec()

CASES: list[tuple[Any, dict]] = [
    ({"text": "hello", "buttons": [{"title": "a", "payload": "/a"}]}, nlg_response_format_spec()),
    ({"text": 3}, nlg_response_format_spec()),
    ({"buttons": "not a list"}, nlg_response_format_spec()),
    ({"custom": None}, nlg_response_format_spec()),
    ({"events": [{"event": "slot", "name": "topic", "value": "x"}]}, ACTION_SCHEMA),
    ({"events": 3}, ACTION_SCHEMA),
    ({"events": [{"event": "no such event"}]}, ACTION_SCHEMA),
    ({"responses": [{"response": "utter_x"}], "events": []}, ACTION_SCHEMA),
]


def _verdict(check: Any, instance: Any, schema: dict) -> str | None:
    try:
        check(instance, schema)
    except jsonschema.ValidationError as error:
        return f"{list(error.path)} {error.message}"
    return None


@pytest.mark.parametrize(("instance", "schema"), CASES)
def test_same_verdict_as_jsonschema(instance: Any, schema: dict) -> None:
    expected = _verdict(jsonschema.validators.validate, instance, schema)
    assert _verdict(rasa_server.validate, instance, schema) == expected


def test_a_schema_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rasa_server, "_validators", {})
    kind = jsonschema.validators.validator_for(nlg_response_format_spec())
    checks: list[dict] = []
    original = kind.check_schema
    monkeypatch.setattr(kind, "check_schema", lambda schema: checks.append(original(schema)))
    for _ in range(5):
        rasa_server.validate({"text": "hi"}, nlg_response_format_spec())  # a new dict each time
    assert len(checks) == 1


def test_an_invalid_schema_is_refused_as_before() -> None:
    with pytest.raises(jsonschema.SchemaError):
        rasa_server.validate({}, {"type": 12})


def test_a_childs_words_never_reach_rasas_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The line Rasa's REST channel writes for a turn the gateway gave up on, as Rasa's command
    line configures its log."""
    monkeypatch.setattr(log_utils, "plugin_manager", log_utils.plugin_manager)  # restored after
    rasa_server.withhold_words_in_logs()
    before = structlog.get_config()
    log_utils.configure_structlog(logging.DEBUG)
    words = "he says he will send my photos"  # ASCII: the JSON renderer escapes Thai
    try:
        with caplog.at_level(logging.DEBUG):
            structlog.get_logger("rasa.core.channels.rest").error(
                "rest.message.received.timeout", text=words
            )
    finally:
        structlog.configure(**before)
    assert "rest.message.received.timeout" in caplog.text
    assert words not in caplog.text and rasa_server.WITHHELD in caplog.text
