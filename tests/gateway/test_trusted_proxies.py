"""The per-address limit behind a reverse proxy (TRUSTED_PROXIES, bot/proxies.py), through the real
gateway process as `make run` starts it (uvicorn, `bot/app.py:main`).

The proxy "on another host" is 127.0.0.2 and a stranger is 127.0.0.3: Linux answers every
127.0.0.0/8 address on the loopback, and only 127.0.0.1 and ::1 are the machine itself to the limit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bot.proxies import parse
from scripts.stack import Stack, free_port
from tests.gateway.conftest import migrate
from tests.scale.test_scale import NGINX_CONF

LIMIT = 3
PROXY, STRANGER = "127.0.0.2", "127.0.0.3"


@contextlib.contextmanager
def lone_gateway(var: Path, **env: str) -> Iterator[Stack]:
    """A gateway alone (no Rasa: polling the web chat does not need it), as `make run` starts it."""
    database_url = f"sqlite:///{var / 'gateway.db'}"
    migrate(database_url)
    stack = Stack(
        var=var,
        gateway_port=free_port(),
        extra_env={
            "DATABASE_URL": database_url,
            "RATE_IP_PER_MIN": str(LIMIT),
            "REDIS_URL": "",
            "LINE_CHANNEL_SECRET": "",
            "TELEGRAM_BOT_TOKEN": "",
            **env,
        },
    )
    try:
        stack.start(("gateway",), timeout=60)
        yield stack
    finally:
        stack.stop(("gateway",))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[str]:
    """Trusting the proxy at 127.0.0.2 (and a network of proxies), not the machine itself."""
    with lone_gateway(
        tmp_path_factory.mktemp("proxied"),
        TRUSTED_PROXIES=f"{PROXY}, 192.0.2.0/24",
        FORWARDED_ALLOW_IPS="*",  # uvicorn's own variable must not widen the setting
    ) as stack:
        yield stack.gateway_url


@pytest.fixture(scope="module")
def nginx(tmp_path_factory) -> Iterator[str]:
    """The scale test's nginx on 127.0.0.1 in front of a gateway left at the default setting."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail("nginx is required in CI (make system)")
        pytest.skip("nginx is not installed (make system installs it)")
    with lone_gateway(tmp_path_factory.mktemp("behind-nginx"), TRUSTED_PROXIES="") as stack:
        conf_dir, port = tmp_path_factory.mktemp("nginx"), free_port()
        port_of = stack.gateway_port
        (conf_dir / "nginx.conf").write_text(
            NGINX_CONF.format(dir=conf_dir, port=port, a=port_of, b=port_of)
        )
        server = subprocess.Popen(
            [binary, "-c", str(conf_dir / "nginx.conf"), "-p", str(conf_dir), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"http://127.0.0.1:{port}/livez").status_code == 200:
                        break
                assert time.monotonic() < deadline and server.poll() is None, "nginx did not start"
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=10)


def connect(url: str, source: str, clients: list[httpx.Client]) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    clients.append(httpx.Client(base_url=url, transport=transport, timeout=30))
    return clients[-1]


@contextlib.contextmanager
def pollers(url: str) -> Iterator[Callable[[str], httpx.Client]]:
    """`make(source)`: a client of `url` connecting from the loopback address `source`."""
    clients: list[httpx.Client] = []
    yield lambda source: connect(url, source, clients)
    for made in clients:
        made.close()


@pytest.fixture
def client(gateway):
    """`client(source)`: a web-chat poller connecting straight to the gateway from `source`."""
    with pollers(gateway) as make:
        yield make


@pytest.fixture
def through_nginx(nginx):
    """`through_nginx(source)`: a poller reaching the gateway through nginx from `source`."""
    with pollers(nginx) as make:
        yield make


def polls(client: httpx.Client, forwarded_for: str | None = None, times: int = 1) -> list[int]:
    """The statuses of `times` polls of the web chat, with this X-Forwarded-For if any."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    user = uuid.uuid4().hex
    return [
        client.get("/webchat/messages", params={"user": user}, headers=headers).status_code
        for _ in range(times)
    ]


def fresh() -> str:
    """A documentation address (198.18.0.0/15) no other test has counted."""
    value = uuid.uuid4().int
    return f"198.{18 + value % 2}.{value // 2 % 256}.{value // 512 % 256}"


def test_behind_a_trusted_proxy_each_forwarded_address_is_limited_on_its_own(client):
    proxy = client(PROXY)
    school, home = fresh(), fresh()
    assert polls(proxy, school, LIMIT) == [200] * LIMIT
    assert polls(proxy, school) == [429]
    assert polls(proxy, home, LIMIT) == [200] * LIMIT  # not held back by the school
    # What the client wrote before the proxy's entry is not believed: still the school.
    assert polls(proxy, f"{fresh()}, {school}") == [429]
    # A chain of trusted proxies: the right-most untrusted address is the client.
    assert polls(proxy, f"{school}, 192.0.2.10") == [429]


def test_the_proxy_s_own_host_and_a_proxy_without_the_header_are_not_limited(client):
    """127.0.0.1 forwarded is a child on the proxy's own host; no header at all means the proxy
    did not say who the client is. Limiting either would hold back every child at once."""
    proxy = client(PROXY)
    assert polls(proxy, "127.0.0.1", LIMIT * 3) == [200] * (LIMIT * 3)
    assert polls(proxy, None, LIMIT * 3) == [200] * (LIMIT * 3)


def test_an_untrusted_peer_cannot_dodge_the_limit_with_made_up_addresses(client):
    stranger = client(STRANGER)
    statuses = [polls(stranger, fresh())[0] for _ in range(LIMIT + 2)]
    assert statuses == [200] * LIMIT + [429, 429]
    assert polls(stranger, "127.0.0.1") == [429]  # nor by claiming to be the machine itself


def test_the_setting_takes_addresses_and_networks_only():
    assert [str(n) for n in parse(" 10.0.0.2, 10.1.0.0/16 ,::1,")] == [
        "10.0.0.2/32",
        "10.1.0.0/16",
        "::1/128",
    ]
    for wrong in ("*", "nginx.internal", "10.0.0.300"):
        with pytest.raises(ValueError):
            parse(wrong)


def test_through_nginx_each_child_s_own_address_is_limited(through_nginx):
    """nginx appends the address it saw to X-Forwarded-For; the gateway trusts nginx on this
    machine by default, and what a child wrote into the header does not help it."""
    child, other = through_nginx("127.0.0.5"), through_nginx("127.0.0.6")
    assert polls(child, None, LIMIT) == [200] * LIMIT
    assert polls(child, fresh()) == [429]
    assert polls(other, fresh(), LIMIT) == [200] * LIMIT
    # Children on the machine itself (the scale test's) are not limited by address.
    assert polls(through_nginx("127.0.0.1"), None, LIMIT * 3) == [200] * (LIMIT * 3)
