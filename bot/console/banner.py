"""The supervisors' banner while the bot is degraded: since when, and how many children got the
fail-safe instead of a real answer so far (bot/health.py; per gateway process)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.console import auth
from bot.console.routes import api


async def degraded(request: Request, _: auth.Signed) -> Response:
    report = request.app.state.health.report()
    return JSONResponse(
        {
            "degraded": not report["ready"],
            "since": report["degraded_since"],
            "failsafe_answers": report["failsafe_answers"],
            "down": [n for n, part in report["parts"].items() if part["state"] != "up"],
        }
    )


routes = [Route("/console/api/health", api(degraded, supervisor=True), methods=["GET"])]
