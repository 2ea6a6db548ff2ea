"""Why the console's request was not done: each says so in the counsellor's language."""

from __future__ import annotations

from typing import Any


class NotAllowed(Exception):
    """The request cannot be done as asked (an empty reply, an unknown category or colleague)."""


class AtLimit(NotAllowed):
    """The counsellor already holds as many chats as one may (CONSOLE_MAX_OPEN_CHATS); `key`
    names the sentence in locales/ that says so, filled with `values`."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key, self.values = key, values


class Changed(NotAllowed):
    """The case is no longer where the console saw it (back in the queue, closed, transferred,
    erased): nothing was done, and the console re-reads the case to say why."""
