"""The web chat's first screen and its quick exit, in Debian's Chromium on a phone-sized screen.

Real Rasa, action server and gateway (the `stack` fixture). The page must open with the greeting
(a child never faces an empty screen) without storing anything, and its quick exit must leave no
trace: nothing in localStorage, and the back button does not bring the chat back. The internet is
not reachable here, so the browser itself answers for the outside pages (where the child came
from, and the neutral page the quick exit opens). Screenshots are kept in var/artifacts/.
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any

import pytest

from bot.channels.webchat import page_language
from bot.config import WEBCHAT_EXIT_URL, Settings
from bot.identity import user_key
from tests.gateway.test_console_browser import (  # noqa: F401 (the fixture)
    TIMEOUT_S,
    browser,
    screenshot,
    wait_until,
)

PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 740}
CAME_FROM = "https://www.google.com/search?q=homework"  # where the child was before the chat
OUTSIDE = re.compile(r"^https://www\.google\.com/")
LANGUAGES = {"th": "th-TH", "en": "en-US"}


def open_chat(stack, chromium, viewport: dict[str, int], language: str) -> tuple[Any, Any, list]:
    """A new browser (nothing stored) on the child's phone: (context, page, errors). The page
    was reached from another site, as a child would."""
    context = chromium.new_context(
        viewport=viewport, base_url=stack.gateway_url, locale=LANGUAGES[language]
    )
    context.set_default_timeout(TIMEOUT_S * 1000)
    context.route(
        OUTSIDE,
        lambda route: route.fulfill(
            status=200,
            content_type="text/html; charset=utf-8",
            body="<!doctype html><title>Weather</title><p>Sunny, 33 °C</p>",
        ),
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.goto(CAME_FROM)
    return context, page, errors


def chat_keys(context, gateway_url: str) -> list[str]:
    """What the gateway's origin keeps in this browser's localStorage (any page open or not)."""
    origin = gateway_url.rstrip("/")
    return [
        entry["name"]
        for stored in context.storage_state()["origins"]
        if stored["origin"] == origin
        for entry in stored["localStorage"]
    ]


def conversations_of(stack, user: str) -> int:
    key = user_key("test-secret", "webchat", user)  # USER_ID_SECRET of the `stack` fixture
    [(count,)] = stack.query("select count(*) from conversations where user_key = :k", {"k": key})
    return count


def bot_said(page) -> int:
    return page.locator("#log .msg.bot").count()


def child_says(page, words: str) -> None:
    """Types and sends, then waits for the answer."""
    before = bot_said(page)
    page.fill("#text", words)
    page.press("#text", "Enter")
    wait_until(f"an answer to {words!r}", lambda: bot_said(page) > before)


def in_reach(page, selector: str) -> dict[str, float]:
    """The element's box; it must lie inside the screen and be what a tap at its centre hits."""
    box = page.locator(selector).bounding_box()
    viewport = page.viewport_size
    assert box is not None, f"{selector} is not rendered"
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], (box, viewport)
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], (box, viewport)
    hit = page.evaluate(
        "([x, y, s]) => document.elementFromPoint(x, y)?.closest(s) !== null",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, selector],
    )
    assert hit, f"{selector} is covered at its centre"
    return box


@pytest.mark.parametrize("language", ["th", "en"])
def test_the_page_opens_with_the_greeting_and_stores_nothing(stack, locales, browser, language):  # noqa: F811
    context, page, errors = open_chat(stack, browser, PHONE, language)
    with page.expect_response(f"{stack.gateway_url}/") as opened:
        page.goto("/")
    policy = opened.value.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy, policy

    # The greeting and its buttons are there at once, in the browser's language.
    greeting = locales.render("utter_greet", language, {"channel": "webchat"})
    first = page.locator("#log .msg.bot").first
    assert first.is_visible() and first.text_content() == greeting.text
    titles = page.locator("#log .buttons button").all_text_contents()
    assert titles == [b.title for b in greeting.buttons]
    assert page.evaluate("document.documentElement.lang") == language
    exit_label = page.locator("#quick-exit").text_content()
    assert exit_label == locales.text("ui_quick_exit", language)
    assert exit_label == {"th": "ออกด่วน", "en": "Quick exit"}[language]
    in_reach(page, "#quick-exit")
    shot = screenshot(page, f"webchat-first-screen-{language}.png")

    # Opening the page (and its polling for later messages) stores nothing about the child.
    user = page.evaluate("localStorage.getItem('webchat-user')")
    with page.expect_response(re.compile(r"/webchat/messages\?user=")):
        pass  # the page's next poll
    assert conversations_of(stack, user) == 0

    # The greeting's buttons work like any other.
    page.locator('#log .buttons button[data-payload="/report_help"]').click()
    wait_until("an answer to the greeting's button", lambda: bot_said(page) > 1)
    assert conversations_of(stack, user) == 1
    assert shot.exists() and shot.stat().st_size > 10_000, shot
    assert errors == []
    context.close()


def test_quick_exit_leaves_no_trace_and_back_does_not_return_to_the_chat(stack, browser):  # noqa: F811
    context, page, errors = open_chat(stack, browser, PHONE, "th")
    page.goto("/")
    child_says(page, "สวัสดีค่ะ")
    user = page.evaluate("localStorage.getItem('webchat-user')")
    assert f"webchat-cursor-{user}" in chat_keys(context, stack.gateway_url)

    page.locator("#quick-exit").click()
    page.wait_for_url(WEBCHAT_EXIT_URL)
    assert not page.url.startswith(stack.gateway_url)
    assert chat_keys(context, stack.gateway_url) == []
    screenshot(page, "webchat-after-quick-exit.png")

    # The chat's place in the history is gone: back goes to where the child was before it.
    page.evaluate("history.back()")
    page.wait_for_url(CAME_FROM)
    assert page.locator("#log").count() == 0
    page.evaluate("history.forward()")
    page.wait_for_url(WEBCHAT_EXIT_URL)
    assert page.locator("#log").count() == 0
    assert errors == []
    context.close()


def test_quick_exit_stays_in_reach_on_a_360_px_phone_in_a_long_chat_and_esc_works(
    stack,
    browser,  # noqa: F811
):
    context, page, errors = open_chat(stack, browser, SMALL_PHONE, "en")
    page.goto("/")
    in_reach(page, "#quick-exit")
    assert page.evaluate("document.documentElement.scrollWidth") <= SMALL_PHONE["width"]

    for words in ("hello", "someone is threatening to share my photos", "what can I do"):
        child_says(page, words)
    page.locator('#log .buttons button[data-payload="/report_help"]').last.click()
    longer = "document.getElementById('log').scrollHeight > 2 * innerHeight"
    wait_until("a chat longer than the screen", lambda: page.evaluate(longer))
    for where in ("0", "l.scrollHeight"):  # the chat's top, then its end, and the page itself
        page.evaluate(f"(l => {{ l.scrollTop = {where}; }})(document.getElementById('log'))")
        page.mouse.wheel(0, 5000)
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        time.sleep(0.2)
        in_reach(page, "#quick-exit")
    assert page.evaluate("document.documentElement.scrollWidth") <= SMALL_PHONE["width"]
    shot = screenshot(page, "webchat-360-long-chat.png")

    page.locator("#text").focus()  # Esc works from anywhere, the message box included
    page.keyboard.press("Escape")
    page.wait_for_url(WEBCHAT_EXIT_URL)
    assert chat_keys(context, stack.gateway_url) == []
    page.evaluate("history.back()")
    page.wait_for_url(CAME_FROM)
    assert page.locator("#log").count() == 0
    assert shot.exists() and shot.stat().st_size > 10_000, shot
    assert errors == []
    context.close()


# -- what the page is built from (no browser needed) --------------------------------------------


@pytest.mark.parametrize(
    "accept_language, language",
    [
        ("", "th"),
        ("th-TH,th;q=0.9,en;q=0.8", "th"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR, EN-gb;q=0.5", "en"),  # the first one we speak
        ("de-DE,ja;q=0.5", "th"),  # none we speak: Thai
        ("*", "th"),
    ],
)
def test_the_page_speaks_the_browser_s_first_language_we_speak(
    locales, accept_language, language
):
    state = SimpleNamespace(locales=locales, settings=SimpleNamespace(default_language="th"))
    assert page_language(state, accept_language) == language


def test_the_quick_exit_goes_only_to_a_web_address(monkeypatch):
    monkeypatch.delenv("WEBCHAT_EXIT_URL", raising=False)
    assert Settings.from_env().webchat_exit_url == WEBCHAT_EXIT_URL
    monkeypatch.setenv("WEBCHAT_EXIT_URL", "https://weather.example/bangkok")
    assert Settings.from_env().webchat_exit_url == "https://weather.example/bangkok"
    for unsafe in ("javascript:history.back()", "data:text/html,hi", "/", "www.example.org"):
        monkeypatch.setenv("WEBCHAT_EXIT_URL", unsafe)
        with pytest.raises(ValueError, match="WEBCHAT_EXIT_URL"):
            Settings.from_env()
