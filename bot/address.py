"""The address a reply can be pushed to (a LINE user id, a Telegram chat id), kept encrypted.

Users are known everywhere by a keyed hash (bot/identity.py), which cannot be reversed. A push,
though, needs the platform's own id: a counsellor's reply or a queue update reaches the child
through it. So that one value is stored encrypted (Fernet, key derived from USER_ID_SECRET), read
only by the adapter that sends, and deleted with the conversation.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class AddressBook:
    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(b"push-address:" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, platform_id: str) -> str:
        return self._fernet.encrypt(platform_id.encode()).decode()

    def open(self, sealed: str | None) -> str | None:
        if not sealed:
            return None
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None
