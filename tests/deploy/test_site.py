"""deploy/nginx/site.conf served by a real nginx in front of a real gateway: https reaches the
gateway, http is sent to https, bodies larger than the gateway reads are refused at the door, and
/nlg (Rasa's, on the machine itself) is not reachable from outside. Only the certificate, the
listening ports and the gateway's port differ from the file (deploy/nginx/check.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.untrusted import MAX_BODY_BYTES  # noqa: E402
from deploy.nginx import check  # noqa: E402
from scripts.stack import Stack  # noqa: E402

UPSTREAM = "server 127.0.0.1:8000;"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("gateway")
    database = f"sqlite:///{var / 'gateway.db'}"
    subprocess.run(
        [str(ROOT / ".venv/gateway/bin/alembic"), "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database},
        check=True,
        capture_output=True,
    )
    stack = Stack.on_free_ports(var, {"DATABASE_URL": database})
    stack.start(("gateway",), timeout=120)
    yield stack
    stack.stop(("gateway",))


@pytest.fixture(scope="module")
def site(gateway) -> Iterator[dict[str, int]]:
    # Not under pytest's own temporary folder: run as root, nginx's workers are `nobody` and must
    # reach the prefix to buffer a large body there.
    directory = Path(tempfile.mkdtemp(prefix="nginx-site-"))
    directory.chmod(0o755)
    text = check.SITE.read_text()
    assert text.count(UPSTREAM) == 1, "the site's upstream is no longer the gateway's default port"
    ports = check.prepare(
        directory, text.replace(UPSTREAM, f"server {gateway.gateway_host}:{gateway.gateway_port};")
    )
    nginx = subprocess.Popen(
        check.command(directory, "-g", "daemon off;"),
        stdout=subprocess.DEVNULL,
        stderr=(directory / "nginx.log").open("wb"),
    )
    deadline = time.monotonic() + 30
    while not all(listening(p) for p in ports.values()):
        assert nginx.poll() is None, (directory / "nginx.log").read_text()
        assert time.monotonic() < deadline, "nginx did not listen"
        time.sleep(0.2)
    yield ports
    nginx.terminate()
    nginx.wait(timeout=10)
    shutil.rmtree(directory, ignore_errors=True)


def https(site: dict[str, int]) -> httpx.Client:
    return httpx.Client(base_url=f"https://127.0.0.1:{site['443']}", verify=False, timeout=30)


def refused_by_nginx(response: httpx.Response) -> bool:
    """nginx's own error page, as opposed to an answer of the gateway passed through."""
    return "<center>nginx" in response.text


def test_https_reaches_the_gateway(site):
    with https(site) as client:
        response = client.get("/livez")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_http_is_sent_to_https(site):
    response = httpx.get(f"http://127.0.0.1:{site['80']}/console?x=1", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://") and response.headers[
        "location"
    ].endswith("/console?x=1")


def test_bodies_over_the_gateways_limit_are_refused_at_the_door(site):
    with https(site) as client:
        over = client.post("/webchat/messages", content=b"x" * (MAX_BODY_BYTES + 1))
        under = client.post("/webchat/messages", content=b"x" * (MAX_BODY_BYTES - 1024))
    assert over.status_code == 413 and refused_by_nginx(over)
    assert not refused_by_nginx(under), "nginx refuses bodies the gateway accepts"


def test_nlg_is_not_reachable_from_outside(site, gateway):
    direct = httpx.post(f"{gateway.gateway_url}/nlg", json={}, timeout=30)
    assert direct.status_code != 404  # the gateway serves it to Rasa on the machine
    with https(site) as client:
        outside = client.post("/nlg", json={})
    assert outside.status_code == 404 and refused_by_nginx(outside)
