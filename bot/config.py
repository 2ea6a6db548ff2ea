"""Settings read once from the environment, so every process is configured the same way."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot import proxies
from bot.holding import HOLD_MAX_S

ROOT = Path(__file__).resolve().parent.parent
# Published in this repository: anyone holding platform user ids could match hashes made with it.
DEV_USER_ID_SECRET = "dev-only-user-id-secret"


# Where the web chat's quick exit goes: a page nobody would wonder about on a shared phone.
WEBCHAT_EXIT_URL = "https://www.google.com/search?q=weather"


def rasa_parts(count: int) -> list[str]:
    """The names of `count` Rasa servers, in RASA_URL's order: "rasa", then "rasa2", "rasa3"...
    The gateway's health parts and scripts/stack.py's processes are both named so."""
    return ["rasa", *(f"rasa{number}" for number in range(2, count + 1))]


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _web_url(name: str, default: str) -> str:
    """An http(s) address from the environment; anything else (a javascript: URL) is refused."""
    value = _env(name, default)
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"{name} must be an http(s) URL")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the gateway needs to know about its surroundings."""

    host: str
    port: int
    database_url: str
    # One Rasa server, or several separated by commas (bot/rasa_client.py shares children out).
    rasa_url: str
    rasa_timeout_s: float
    # Turns at each Rasa server at once (bot/rasa_client.py); the others wait, then fall back.
    rasa_max_in_flight: int
    nlg_token: str
    user_id_secret: str
    locales_dir: Path
    default_language: str
    # LINE (bot/channels/line.py): on when both secrets are set.
    line_channel_secret: str
    line_channel_access_token: str
    line_api_base_url: str
    line_data_api_base_url: str
    line_push_budget: int
    # Telegram (bot/channels/telegram.py): on when the token is set.
    telegram_bot_token: str
    telegram_webhook_secret: str
    telegram_mode: str
    telegram_api_base_url: str
    # The gateway's public https URL, for registering webhooks (make telegram-webhook).
    public_base_url: str
    # Handoff (docs/HANDOFF.md): opening hours per language in Bangkok time ("08:00-22:00",
    # empty = always open), the wait per case until there is history, and the no-answer timers.
    handoff_hours: dict[str, str]
    handoff_minutes_per_case: float
    handoff_remind_after_s: float
    handoff_return_after_s: float
    handoff_check_every_s: float
    # How many chats one counsellor may hold at once (claims and assignments beyond it refused).
    console_max_open_chats: int
    # How often pushes a platform refused (or a restart interrupted) are tried again.
    relay_retry_every_s: float
    # Retention (docs/PRIVACY.md): words older than this many days are purged, checked hourly.
    retention_days: int
    retention_check_every_s: float
    # Rasa's tracker store, so a user's erasure and the purge reach Rasa's copy of their words.
    tracker_store_url: str
    # Redis (lock store, console live updates across gateway replicas); empty = in-process.
    redis_url: str
    # The console's session cookie is sent over https only unless this is off (local http).
    console_secure_cookie: bool
    # Rate limits (bot/ratelimit.py): messages to Rasa per user, and web-chat requests per client
    # address, per minute; 0 turns a limit off.
    rate_user_per_min: int = 20
    rate_ip_per_min: int = 600
    # Console sign-in attempts per client address per minute (bot/console/routes.py).
    rate_login_per_min: int = 10
    # Peers whose X-Forwarded-For names the client (bot/proxies.py): the reverse proxies.
    trusted_proxies: tuple[proxies.Network, ...] = proxies.parse(proxies.DEFAULT)
    # The web chat's quick exit (Esc, or its button) replaces the page with this one.
    webchat_exit_url: str = WEBCHAT_EXIT_URL
    # Health (bot/health.py): the action server's address, and how often and how patiently every
    # part is probed for /healthz and the circuit breaker in front of Rasa, and how long a part
    # that answers too slowly may go on failing before it counts as hung.
    action_url: str = "http://127.0.0.1:5055"
    health_probe_every_s: float = 2.0
    health_probe_timeout_s: float = 3.0
    health_hung_after_s: float = 4.0
    # Past capacity (bot/holding.py): how long a child who got the holding line may wait for
    # the real answer before the holding line is the last word.
    hold_max_s: float = HOLD_MAX_S

    @property
    def rasa_urls(self) -> tuple[str, ...]:
        return tuple(url.strip().rstrip("/") for url in self.rasa_url.split(",") if url.strip())

    @property
    def line_enabled(self) -> bool:
        return bool(self.line_channel_secret and self.line_channel_access_token)

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            host=_env("GATEWAY_HOST", "127.0.0.1"),
            port=int(_env("GATEWAY_PORT", "8000")),
            database_url=_env("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'gateway.db'}"),
            rasa_url=_env("RASA_URL", "http://127.0.0.1:5005"),
            rasa_timeout_s=float(_env("RASA_TIMEOUT_S", "4")),
            rasa_max_in_flight=int(_env("RASA_MAX_IN_FLIGHT", "8")),
            nlg_token=_env("NLG_TOKEN", "dev-nlg-token"),
            user_id_secret=_env("USER_ID_SECRET", DEV_USER_ID_SECRET),
            locales_dir=Path(_env("LOCALES_DIR", str(ROOT / "locales"))),
            default_language=_env("DEFAULT_LANGUAGE", "th"),
            line_channel_secret=_env("LINE_CHANNEL_SECRET", ""),
            line_channel_access_token=_env("LINE_CHANNEL_ACCESS_TOKEN", ""),
            line_api_base_url=_env("LINE_API_BASE_URL", "https://api.line.me"),
            line_data_api_base_url=_env("LINE_DATA_API_BASE_URL", "https://api-data.line.me"),
            line_push_budget=int(_env("LINE_PUSH_BUDGET", "500")),
            telegram_bot_token=_env("TELEGRAM_BOT_TOKEN", ""),
            telegram_webhook_secret=_env("TELEGRAM_WEBHOOK_SECRET", ""),
            telegram_mode=_env("TELEGRAM_MODE", "webhook"),
            telegram_api_base_url=_env("TELEGRAM_API_BASE_URL", "https://api.telegram.org"),
            public_base_url=_env("PUBLIC_BASE_URL", ""),
            handoff_hours={
                "th": _env("HANDOFF_HOURS_TH", ""),
                "en": _env("HANDOFF_HOURS_EN", ""),
            },
            handoff_minutes_per_case=float(_env("HANDOFF_MINUTES_PER_CASE", "10")),
            handoff_remind_after_s=float(_env("HANDOFF_REMIND_AFTER_S", "180")),
            handoff_return_after_s=float(_env("HANDOFF_RETURN_AFTER_S", "600")),
            handoff_check_every_s=float(_env("HANDOFF_CHECK_EVERY_S", "15")),
            console_max_open_chats=int(_env("CONSOLE_MAX_OPEN_CHATS", "3")),
            relay_retry_every_s=float(_env("RELAY_RETRY_EVERY_S", "10")),
            console_secure_cookie=_env("CONSOLE_SECURE_COOKIE", "0") == "1",
            retention_days=int(_env("RETENTION_DAYS", "30")),
            rate_user_per_min=int(_env("RATE_USER_PER_MIN", "20")),
            rate_ip_per_min=int(_env("RATE_IP_PER_MIN", "600")),
            rate_login_per_min=int(_env("RATE_LOGIN_PER_MIN", "10")),
            trusted_proxies=proxies.parse(_env("TRUSTED_PROXIES", proxies.DEFAULT)),
            webchat_exit_url=_web_url("WEBCHAT_EXIT_URL", WEBCHAT_EXIT_URL),
            retention_check_every_s=float(_env("RETENTION_CHECK_EVERY_S", "3600")),
            # the rule scripts/stack.py gives Rasa: on PostgreSQL the tracker shares DATABASE_URL
            tracker_store_url=_env(
                "TRACKER_STORE_URL",
                _env("DATABASE_URL", "")
                if _env("DATABASE_URL", "").startswith("postgresql")
                else f"sqlite:///{_env('TRACKER_DB', str(ROOT / 'var' / 'rasa_tracker.db'))}",
            ),
            redis_url=_env("REDIS_URL", ""),
            action_url=_env("ACTION_URL", f"http://127.0.0.1:{_env('ACTION_PORT', '5055')}"),
            health_probe_every_s=float(_env("HEALTH_PROBE_EVERY_S", "2")),
            health_probe_timeout_s=float(_env("HEALTH_PROBE_TIMEOUT_S", "3")),
            health_hung_after_s=float(_env("HEALTH_HUNG_AFTER_S", _env("RASA_TIMEOUT_S", "4"))),
            hold_max_s=float(_env("HOLD_MAX_S", str(HOLD_MAX_S))),
        )


def unsafe_production(env: Mapping[str, str]) -> str | None:
    """Why this environment must not start, or None. On PostgreSQL (production) user ids hashed
    with a missing or published USER_ID_SECRET can be matched by anyone holding platform ids."""
    if not env.get("DATABASE_URL", "").strip().startswith("postgresql"):
        return None
    secret = env.get("USER_ID_SECRET", "").strip()
    if secret and secret != DEV_USER_ID_SECRET:
        return None
    what = "the development value" if secret else "unset or empty"
    return (
        f"refusing to start: DATABASE_URL is PostgreSQL (production) and USER_ID_SECRET is {what}."
        " Set USER_ID_SECRET to a long random secret, the same on every replica, e.g.\n"
        "  export USER_ID_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    )


def refuse_unsafe_production(env: Mapping[str, str]) -> None:
    """Stops `make run` (scripts/stack.py) before anything starts, naming what to set."""
    why = unsafe_production(env)
    if why:
        raise SystemExit(why)
