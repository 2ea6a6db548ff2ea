"""Registers the Telegram webhook (with its secret token) and the command menu in Thai and English.

    make telegram-webhook      # PUBLIC_BASE_URL=https://... TELEGRAM_WEBHOOK_SECRET=... needed
    .venv/gateway/bin/python -m scripts.telegram_webhook --commands-only   # for polling mode

The webhook URL is PUBLIC_BASE_URL + /webhooks/telegram; Telegram then sends the secret in every
request's X-Telegram-Bot-Api-Secret-Token header, and the gateway refuses requests without it.
Command descriptions are the `ui_command_*` sentences in locales/, set once per language (the
menu a Telegram app shows follows the app's language) and once without a language, in
DEFAULT_LANGUAGE, for every other app language. Uses TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE_URL
like the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from telegram import BotCommand
from telegram.error import TelegramError

from bot.channels.telegram import ALLOWED_UPDATES, COMMANDS, make_bot
from bot.config import Settings
from bot.locales import Locales

WEBHOOK_PATH = "/webhooks/telegram"


class SetupError(Exception):
    """Something the registration needs is missing (a setting or a sentence)."""


def menus(locales: Locales, default_language: str) -> dict[str | None, list[BotCommand]]:
    """Language code (None: every other language) → the command menu; all sentences must exist."""
    out: dict[str | None, list[BotCommand]] = {}
    for language in [*locales.languages, None]:
        commands = []
        for command in COMMANDS:
            rendered = locales.render(f"ui_command_{command}", language or default_language, {})
            if rendered is None:
                where = language or default_language
                raise SetupError(f"locales/{where}.yml has no ui_command_{command}")
            commands.append(BotCommand(command, rendered.text[:256]))
        out[language] = commands
    return out


def webhook_url(settings: Settings) -> str:
    base = settings.public_base_url.rstrip("/")
    if not base.startswith("https://"):
        raise SetupError("PUBLIC_BASE_URL must be the gateway's public https:// address")
    if not settings.telegram_webhook_secret:
        raise SetupError("TELEGRAM_WEBHOOK_SECRET must be set (A-Z, a-z, 0-9, _ and -)")
    return base + WEBHOOK_PATH


async def register(settings: Settings, locales: Locales, webhook: bool = True) -> None:
    """The command menus, then the webhook; the same secret must be in the gateway's settings."""
    commands = menus(locales, settings.default_language)
    url = webhook_url(settings) if webhook else None
    async with make_bot(settings) as bot:
        for language, menu in commands.items():
            await bot.set_my_commands(menu, language_code=language)
        if url:
            await bot.set_webhook(
                url,
                secret_token=settings.telegram_webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--commands-only", action="store_true", help="set the command menus; no webhook"
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if not settings.telegram_bot_token:
        print("telegram-webhook: TELEGRAM_BOT_TOKEN is not set", file=sys.stderr)
        return 1
    webhook = not args.commands_only and settings.telegram_mode == "webhook"
    try:
        asyncio.run(register(settings, Locales(settings.locales_dir), webhook))
    except SetupError as problem:
        print(f"telegram-webhook: {problem}", file=sys.stderr)
        return 1
    except TelegramError as problem:  # its text may repeat the token: the kind is enough
        print(f"telegram-webhook: the Bot API refused ({type(problem).__name__})", file=sys.stderr)
        return 1
    print("command menus set" + (f"; webhook at {webhook_url(settings)}" if webhook else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
