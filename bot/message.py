"""Channel-neutral messages: what every adapter produces and consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class Incoming:
    """One thing a user did, already stripped of platform details.

    `user_key` is the keyed hash of the platform user id; the raw id never leaves the adapter.
    `kind` is "text" for text and button presses; other kinds (sticker, media) carry no text.
    """

    channel: str
    user_key: str
    text: str
    kind: str = "text"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outgoing:
    text: str
    buttons: tuple[Button, ...] = ()
    custom: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "buttons": [{"title": b.title, "payload": b.payload} for b in self.buttons],
        }
