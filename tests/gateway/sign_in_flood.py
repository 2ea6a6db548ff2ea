"""An attacker's script: `times` wrong sign-ins at once from one forwarded address.

A real attacker's own work happens elsewhere; here it shares the test's two cores with the
children and the stack, so it runs in a session of its own (Linux schedules each session as a
group, and a nice value counts only inside its group) at the lowest priority of both kinds: what
the children feel is then what the gateway does with the flood, not what sending it costs.

    python -m tests.gateway.sign_in_flood URL USERNAME ADDRESS TIMES

Prints "ready" once it holds a sign-in form, floods when a line arrives on stdin, then prints the
statuses as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys

import httpx


async def flood(url: str, username: str, address: str, times: int) -> list[int]:
    headers = {"X-Forwarded-For": address}  # the stack trusts 127.0.0.1 as a proxy
    limits = httpx.Limits(max_connections=times)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        csrf = (await client.get("/console/login", headers=headers)).cookies["console_csrf"]
        headers["cookie"] = f"console_csrf={csrf}"
        data = {"username": username, "password": "wrong password!", "csrf": csrf}
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        answers = await asyncio.gather(
            *(client.post("/console/login", data=data, headers=headers) for _ in range(times))
        )
        return [answer.status_code for answer in answers]


def lowest_priority() -> None:
    os.setsid()
    # a kernel without autogroups has no such file
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as autogroup:
        autogroup.write("19")
    os.nice(19)


if __name__ == "__main__":
    lowest_priority()
    url, username, address, times = sys.argv[1:5]
    print(json.dumps(asyncio.run(flood(url, username, address, int(times)))), flush=True)
