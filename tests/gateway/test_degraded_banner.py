"""The console's banner while the bot is degraded, in a real browser: a gateway with no Rasa
behind it (as while Rasa restarts). Supervisors see since when and how many fail-safe answers
went out so far, in the console's language; counsellors are not shown it."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from scripts.counsellor import create
from tests.gateway.test_console_browser import (  # noqa: F401 (browser: the fixture)
    TIMEOUT_S,
    VIEWPORT,
    browser,
    template,
    wait_until,
)
from tests.gateway.test_console_browser import sign_in as console_sign_in
from tests.gateway.test_trusted_proxies import lone_gateway


def sign_in(chromium, base: str, username: str, password: str):  # noqa: ANN001, ANN201
    context = chromium.new_context(viewport=VIEWPORT, base_url=base, locale="th-TH")
    context.set_default_timeout(TIMEOUT_S * 1000)
    return console_sign_in(context, username, password)


def test_supervisors_see_the_degraded_banner_counsellors_do_not(tmp_path, locales, request):
    with lone_gateway(tmp_path, RATE_IP_PER_MIN="0") as stack:
        accounts = {}
        for role in ("supervisor", "counsellor"):
            accounts[role] = (f"{role[0]}{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}")
            username, password = accounts[role]
            asyncio.run(create(stack.env()["DATABASE_URL"], username, "พี่ฟ้า", password, role))
        for number in range(3):  # three children get the fail-safe
            reply = httpx.post(
                f"{stack.gateway_url}/webchat/messages",
                json={"user": f"banner-{number}", "text": "สวัสดีค่ะ"},
                timeout=30,
            ).json()
            assert reply["messages"][0]["text"] == locales.render("utter_fallback", "th", {}).text

        chromium = request.getfixturevalue("browser")  # after asyncio.run: see that fixture
        supervisor = sign_in(chromium, stack.gateway_url, *accounts["supervisor"])
        banner = supervisor.locator('[data-testid="degraded"]')
        banner.wait_for(state="visible")
        text = banner.text_content().strip()
        assert template(locales, "console_degraded", "th").match(text), text
        assert "3 ครั้ง" in text and locales.text("console_part_rasa", "th") in text
        assert "{" not in text
        supervisor.click('[data-testid="lang-en"]')
        wait_until(
            "the banner in English", lambda: banner.text_content().strip().startswith("Since")
        )
        assert template(locales, "console_degraded", "en").match(banner.text_content().strip())

        counsellor = sign_in(chromium, stack.gateway_url, *accounts["counsellor"])
        counsellor.wait_for_timeout(1000)
        assert counsellor.locator('[data-testid="degraded"]').is_hidden()
        assert (
            httpx.get(f"{stack.gateway_url}/console/api/health").status_code == 401
        )  # not signed in
