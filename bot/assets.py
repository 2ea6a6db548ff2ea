"""Pages' scripts and style sheets, served as files of their own so no page needs inline code:
the Content-Security-Policy (bot/security.py) then allows only this gateway's files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def routes(prefix: str, directory: Path, names: Iterable[str]) -> list[Route]:
    """GET {prefix}/{name} for each named file in directory, with its content type."""

    def route(name: str) -> Route:
        path = directory / name
        media_type = TYPES[path.suffix]

        async def serve(_: Request) -> FileResponse:
            return FileResponse(path, media_type=media_type)

        return Route(f"{prefix}/{name}", serve, methods=["GET"])

    return [route(name) for name in names]
