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
    `pressed` says the text is a button's payload the user pressed, not words they typed: some
    payloads act only when pressed (bot/forget.py: nothing is deleted by typing).
    `language` is the platform's guess (the app's language), for a payload that arrives before
    the child has written anything to tell the language by.
    """

    channel: str
    user_key: str
    text: str
    kind: str = "text"
    metadata: dict[str, Any] = field(default_factory=dict)
    pressed: bool = False
    language: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """A message to the user. `cursor` (the stored message's id) and `sender` are known once it
    is stored; the web chat uses the cursor to fetch what came after."""

    text: str
    buttons: tuple[Button, ...] = ()
    custom: dict[str, Any] | None = None
    cursor: int | None = None
    sender: str = "bot"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "buttons": [{"title": b.title, "payload": b.payload} for b in self.buttons],
            "sender": self.sender,
        }
        if self.cursor is not None:
            out["cursor"] = self.cursor
        return out
