"""Talks to Rasa's REST channel; any failure becomes RasaUnavailable so the router can fall back."""

from __future__ import annotations

from typing import Any

import httpx

from bot.message import Button, Outgoing


class RasaUnavailable(Exception):
    """Rasa did not give a usable answer in time (down, error, timeout, bad body)."""


class RasaClient:
    def __init__(self, base_url: str, timeout_s: float, client: httpx.AsyncClient) -> None:
        self._url = base_url.rstrip("/") + "/webhooks/rest/webhook"
        self._timeout = timeout_s
        self._client = client

    async def send(
        self, sender: str, text: str, input_channel: str, metadata: dict[str, Any]
    ) -> list[Outgoing]:
        body = {
            "sender": sender,
            "message": text,
            "input_channel": input_channel,
            "metadata": metadata,
        }
        try:
            response = await self._client.post(self._url, json=body, timeout=self._timeout)
            response.raise_for_status()
            return [_parse(item) for item in response.json()]
        except (httpx.HTTPError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RasaUnavailable(type(exc).__name__) from exc


def _parse(item: dict[str, Any]) -> Outgoing:
    buttons = tuple(
        Button(title=str(b["title"]), payload=str(b["payload"])) for b in item.get("buttons") or ()
    )
    return Outgoing(text=item.get("text") or "", buttons=buttons, custom=item.get("custom"))
