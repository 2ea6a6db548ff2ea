"""The supervisors' banners: while the bot is degraded, since when, and how many children got the
fail-safe instead of a real answer so far (bot/health.py); while it is overloaded, how many turns
of the last minutes got the holding line first, and how many of those the real answer later
(bot/holding.py). Both per gateway process."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.console import auth
from bot.console.routes import api


async def degraded(request: Request, _: auth.Signed) -> Response:
    report = request.app.state.health.report()
    overload = request.app.state.router.holding.report()
    return JSONResponse(
        {
            "degraded": not report["ready"],
            "since": report["degraded_since"],
            "failsafe_answers": report["failsafe_answers"],
            "down": [n for n, part in report["parts"].items() if part["state"] != "up"],
            "overloaded": overload["held"] > 0,
            "overload": overload,
        }
    )


routes = [Route("/console/api/health", api(degraded, supervisor=True), methods=["GET"])]
