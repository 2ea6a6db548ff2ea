"""Creates a console account: `make counsellor USERNAME=… NAME=… ROLE=counsellor|supervisor`
(`--particle ครับ` for a counsellor who speaks with ครับ; the default is ค่ะ, and each counsellor
can change their name and particle in the console).

The password is asked for (or read from COUNSELLOR_PASSWORD, for scripts); only its argon2 hash
is stored. `--demo` creates the demo counsellor `make run` offers on a fresh machine, once.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import sys
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import ROOT, Settings  # noqa: E402
from bot.console.auth import create_counsellor  # noqa: E402
from bot.handoff import voice  # noqa: E402
from bot.store.db import make_engine, make_sessionmaker  # noqa: E402
from bot.store.handoff_models import Counsellor  # noqa: E402

DEMO_FILE = ROOT / "var" / "demo_counsellor.txt"


async def create(
    database_url: str,
    username: str,
    name: str,
    password: str,
    role: str,
    particle: str = voice.DEFAULT_PARTICLE,
) -> None:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            taken = await session.scalar(
                select(func.count()).where(Counsellor.username == username.strip().lower())
            )
            if taken:
                raise ValueError(f"the username {username!r} is taken")
            name, particle = voice.checked(name, particle)
            counsellor = await create_counsellor(session, username, name, password, role)
            counsellor.particle = particle
            await session.commit()
    finally:
        await engine.dispose()


async def demo() -> str | None:
    """The demo login, created the first time there is no account at all; None otherwise."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            if await session.scalar(select(func.count()).select_from(Counsellor)):
                return DEMO_FILE.read_text().strip() if DEMO_FILE.exists() else None
            password = secrets.token_urlsafe(12)
            await create_counsellor(session, "demo", "Demo counsellor", password, "supervisor")
            await session.commit()
    finally:
        await engine.dispose()
    DEMO_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEMO_FILE.write_text(f"demo / {password}\n")
    DEMO_FILE.chmod(0o600)
    return f"demo / {password}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--username")
    parser.add_argument("--name")
    parser.add_argument("--role", default="counsellor", choices=("counsellor", "supervisor"))
    parser.add_argument(
        "--particle", default=voice.DEFAULT_PARTICLE, choices=tuple(voice.PARTICLES)
    )
    parser.add_argument("--demo", action="store_true")
    args = parser.parse_args()
    if args.demo:
        login = asyncio.run(demo())
        if login:
            print(f"  console login {login}  (demo account; make counsellor creates real ones)")
        return
    if not args.username or not args.name:
        parser.error("USERNAME and NAME are needed: make counsellor USERNAME=… NAME=…")
    password = os.environ.get("COUNSELLOR_PASSWORD") or getpass.getpass("Password (10+ chars): ")
    try:
        database_url = Settings.from_env().database_url
        asyncio.run(
            create(database_url, args.username, args.name, password, args.role, args.particle)
        )
    except ValueError as refused:
        sys.exit(f"not created: {refused}")
    print(f"created {args.role} {args.username!r}")


if __name__ == "__main__":
    main()
