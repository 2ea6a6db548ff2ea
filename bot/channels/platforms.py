"""Which platform channels are switched on (by their environment variables), and their lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from bot.channels.platform import PlatformChannel
from bot.config import Settings


def enabled(settings: Settings) -> list[PlatformChannel]:
    channels: list[PlatformChannel] = []
    if settings.line_enabled:
        from bot.channels.line import LineChannel

        channels.append(LineChannel(settings))
    if settings.telegram_enabled:
        from bot.channels.telegram import TelegramChannel

        channels.append(TelegramChannel(settings))
    return channels


@contextlib.asynccontextmanager
async def running(channels: list[PlatformChannel], app: Starlette) -> AsyncIterator[None]:
    """Starts each channel's clients (and Telegram's polling, when chosen) for the app's life."""
    app.state.channels = {c.name: c for c in channels}
    async with contextlib.AsyncExitStack() as stack:
        for channel in channels:
            await stack.enter_async_context(channel.running(app))
        yield
