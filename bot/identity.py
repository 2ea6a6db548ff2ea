"""Keyed hashing of platform user ids, so no raw id is stored or sent to Rasa."""

from __future__ import annotations

import hashlib
import hmac


def user_key(secret: str, channel: str, platform_user_id: str) -> str:
    """A stable pseudonym per (channel, user); without the secret it cannot be reversed."""
    digest = hmac.new(
        secret.encode(), f"{channel}:{platform_user_id}".encode(), hashlib.sha256
    ).hexdigest()
    return f"{channel}-{digest[:40]}"
