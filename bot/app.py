"""The gateway's ASGI application: wires settings, storage, Rasa, locales and channels together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.address import AddressBook
from bot.background import background
from bot.channels import platforms, webchat
from bot.config import Settings
from bot.console import banner
from bot.console import routes as console
from bot.handoff.events import Events
from bot.handoff.relay import Relay
from bot.handoff.service import Handoff
from bot.health import monitoring
from bot.inbox import Inbox
from bot.locales import Locales
from bot.nlg import nlg_endpoint
from bot.rasa_client import RasaClient
from bot.ratelimit import RateLimiter
from bot.router import Router
from bot.security import SecurityHeaders
from bot.store.db import make_engine, make_sessionmaker
from bot.store.retention import Retention
from bot.store.steps import Steps
from bot.untrusted import BodyLimit

log = logging.getLogger(__name__)


async def alive(_: Request) -> JSONResponse:
    """Liveness: the gateway process answers (what the supervisor of `make run` watches)."""
    return JSONResponse({"ok": True})


async def health(request: Request) -> JSONResponse:
    """Readiness: every part with its state and since when; 503 while no real answers can be
    given (the fail-safe still can: bot/health.py)."""
    monitor = request.app.state.health
    return JSONResponse(monitor.report(), status_code=200 if monitor.ready else 503)


@contextlib.asynccontextmanager
async def _every(seconds: float, job: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Runs `job` every `seconds` while the app lives; a failing run is logged, never fatal."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception("periodic %s failed", getattr(job, "__name__", "job"))

    async with background(loop()):
        yield


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        steps = Steps(engine)
        async with (
            httpx.AsyncClient() as client,
            monitoring(settings, sessions) as health,
            RasaClient(
                settings.rasa_urls, settings.rasa_timeout_s, settings.rasa_max_in_flight, health
            ) as rasa,
        ):
            state = app.state
            state.settings = settings
            state.sessions = sessions
            state.steps = steps
            state.health = health
            state.locales = Locales(settings.locales_dir)
            state.addresses = AddressBook(settings.user_id_secret)
            state.inbox = Inbox(steps, state.addresses)
            state.inbox.register(webchat.CHANNEL, webchat.WebChat(state))
            for channel in channels:
                state.inbox.register(channel.name, channel)
            state.http = client
            state.relay = Relay(state.sessions, {c.name: c for c in channels})
            state.handoff = Handoff(
                state.sessions,
                state.locales,
                settings,
                state.relay,
                Events(settings.redis_url),
            )
            tracker = make_engine(settings.tracker_store_url)
            state.retention = Retention(state.sessions, tracker, settings.retention_days)
            state.router = Router(
                state.sessions,
                steps,
                rasa,
                state.locales,
                state.handoff,
                settings.default_language,
                user_limit=RateLimiter(settings.rate_user_per_min),
                retention=state.retention,
                hold_after_s=settings.rasa_timeout_s,
                hold_max_s=settings.hold_max_s,
            )
            state.ip_limit = RateLimiter(settings.rate_ip_per_min)
            state.login_limit = RateLimiter(settings.rate_login_per_min)
            async with (
                state.handoff.events.running(),
                platforms.running(channels, app),
                state.inbox.running(),
                _every(settings.handoff_check_every_s, state.handoff.check_waiting),
                _every(settings.retention_check_every_s, state.retention.purge),
                _every(settings.relay_retry_every_s, state.relay.retry),
            ):
                yield
            await state.inbox.drain()
            await tracker.dispose()
        steps.close()
        await engine.dispose()

    channels = platforms.enabled(settings)
    routes = [
        Route("/livez", alive, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/nlg", nlg_endpoint, methods=["POST"]),
        *webchat.routes,
        *console.routes,
        *banner.routes,
        *[Route(f"/webhooks/{c.name}", c.webhook, methods=["POST"]) for c in channels],
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(SecurityHeaders, hsts=settings.console_secure_cookie),
            Middleware(BodyLimit),
        ],
    )


def main() -> None:
    import uvicorn

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.from_env()
    # aiosqlite runs every SQLite call on a thread of its own, whose answer waits until the event
    # loop's thread lets go of the GIL: by default after up to 5 ms, several times a turn.
    # make bench: 0.5 ms took about 10 ms off each web-chat turn. PostgreSQL needs no thread.
    sys.setswitchinterval(0.0005)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        # The client's address for the per-address limit: bot/proxies.py, bot/ratelimit.py.
        proxy_headers=True,
        forwarded_allow_ips=[str(network) for network in settings.trusted_proxies],
    )


if __name__ == "__main__":
    main()
