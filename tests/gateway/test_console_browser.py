"""The warm handoff in real browsers: a child in the web chat, a counsellor in the console.

Real Rasa, action server and gateway (the `stack` fixture); Debian's Chromium driven by Playwright;
Thai fonts from fonts-thai-tlwg. The child asks for a person, agrees to the summary and waits; the
counsellor sees the case arrive live, claims it, reads the summary, answers in Thai; while the
counsellor has the chat the bot says nothing; the counsellor closes with a wrap-up category and the
bot answers again. Screenshots of both console views are kept in var/artifacts/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.gateway.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "var" / "artifacts"
VIEWPORT = {"width": 1366, "height": 768}
THAI = re.compile(r"[\u0e00-\u0e7f]")
THAI_FONTS = {
    "Noto Sans Thai",
    "Loma",
    "Garuda",
    "Tlwg Typo",
    "Kinnari",
    "Norasi",
    "Purisa",
    "Sawasdee",
    "Tlwg Mono",
    "Tlwg Typewriter",
    "Tlwg Typist",
    "Umpush",
    "Waree",
    "Laksaman",
}
TIMEOUT_S = 45
CATEGORY_COUNT = 75  # subcategories in locales/categories.yml
# What code looks like: snake_case names ("abuse_disclosure") or dotted ids ("violence.bullying").
IDENTIFIER = re.compile(r"\b[a-z]+(?:[_.][a-z0-9]+)+\b")

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T | None], timeout: float = TIMEOUT_S) -> T:
    """Polls `check` until it returns something truthy; fails saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for: {what}")
        time.sleep(0.25)


def template(locales, name: str, language: str = "th") -> re.Pattern[str]:
    """A regular expression matching any variant of a response, whatever fills its `{values}`."""
    variants = locales.responses[language][name]
    parts = []
    for variant in variants:
        pieces = re.split(r"\{[a-z_]+\}", variant.text)
        parts.append(".+?".join(re.escape(piece) for piece in pieces))
    return re.compile("^(?:" + "|".join(parts) + ")$", re.DOTALL)


def said(locales, name: str, language: str = "th") -> str:
    return locales.render(name, language, {}).text


# -- the child's page ------------------------------------------------------------------------------


def bubbles(page, kind: str) -> list[str]:
    """Texts of the child's page bubbles: "me", "bot" (bot and system), or "counsellor"."""
    return page.locator(f"#log .msg.{kind}").all_text_contents()


def wait_for_bubble(page, kind: str, match: str | re.Pattern[str], after: int = 0) -> str:
    def found() -> str | None:
        for text in bubbles(page, kind)[after:]:
            hit = match.search(text) if isinstance(match, re.Pattern) else match in text
            if hit:
                return text
        return None

    return wait_until(f"a {kind} bubble with {match!r}; have {bubbles(page, kind)[after:]}", found)


def press(page, payload: str) -> None:
    button = page.locator(f'#log .buttons button[data-payload="{payload}"]').last
    button.wait_for(state="visible", timeout=TIMEOUT_S * 1000)
    button.click()


def child_types(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


# -- the console -----------------------------------------------------------------------------------


def queued_ids(console) -> set[int]:
    response = console.request.get("/console/api/queue")
    assert response.ok, response.text()
    return {case["id"] for case in response.json()["queued"]}


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def platform_fonts(page, selector: str) -> dict[str, int]:
    """The fonts Chromium really used for the text of one element: {family: glyphs}."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return {f["familyName"]: f["glyphCount"] for f in fonts}


# Every page reports what its Content-Security-Policy blocked (bot/security.py); Chromium also
# logs it. Init scripts come from Playwright, not the page, so the policy does not block this one.
REPORT_CSP = """document.addEventListener("securitypolicyviolation", (e) =>
  console.error("CSP violation: " + e.violatedDirective + " " + (e.blockedURI || "inline")));"""


class Watched:
    """Chromium whose every context records what a page's Content-Security-Policy blocked:
    a page that needs inline code or style is broken, whichever test opens it."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser
        self.violations: list[str] = []

    def new_context(self, **options: Any) -> Any:
        context = self._browser.new_context(**options)
        context.add_init_script(REPORT_CSP)
        context.on("console", self._console)
        return context

    def _console(self, message: Any) -> None:
        if "CSP violation" in message.text or "Content Security Policy" in message.text:
            self.violations.append(f"{message.location.get('url')}: {message.text}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium. Requested after `counsellor`: while Playwright's sync API runs, no other
    asyncio loop (the account is created with asyncio.run) can start in this thread."""
    assert CHROMIUM.exists(), "the console's browser test needs Debian's chromium (make test)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        watched = Watched(browser)
        try:
            yield watched
        finally:
            browser.close()
        assert watched.violations == [], watched.violations


def test_a_child_reaches_a_counsellor_and_back_to_the_bot(stack, counsellor, locales, browser):
    base = stack.gateway_url
    username, password = counsellor
    errors: list[str] = []

    # The counsellor signs in first: an open console counts as being online.
    console_context = browser.new_context(viewport=VIEWPORT, base_url=base, locale="th-TH")
    console_context.set_default_timeout(TIMEOUT_S * 1000)
    console = console_context.new_page()
    console.on("pageerror", lambda exc: errors.append(f"console page: {exc}"))
    console.goto("/console/login")
    console.fill('input[name="username"]', username)
    console.fill('input[name="password"]', password)
    console.click('button[type="submit"]')
    console.wait_for_url(re.compile(r"/console(\?.*)?$"))
    console.wait_for_selector('body[data-ready="true"]')
    assert console.locator('[data-testid="title"]').text_content() == said(locales, "console_title")
    before = queued_ids(console)

    child_context = browser.new_context(viewport={"width": 420, "height": 760}, base_url=base)
    child_context.set_default_timeout(TIMEOUT_S * 1000)
    child = child_context.new_page()
    child.on("pageerror", lambda exc: errors.append(f"child page: {exc}"))
    child.goto("/")
    user = child.evaluate("localStorage.getItem('webchat-user')")
    assert user

    # The child asks for a person and agrees to send the summary shown at once.
    child_types(child, "ขอคุยกับคนจริงๆ ได้ไหม")
    press(child, "/handoff_agree")
    wait_for_bubble(child, "bot", template(locales, "utter_handoff_queued"))

    # The case arrives in the console without a reload (server-sent events).
    def new_case() -> int | None:
        ids = {
            int(i)
            for i in console.locator('[data-testid="queue-item"]').evaluate_all(
                "rows => rows.map(r => r.dataset.caseId)"
            )
        }
        fresh = ids - before
        return max(fresh) if fresh else None

    case_id = wait_until("the child's case in the console's queue", new_case)
    row = console.locator(f'[data-testid="queue-item"][data-case-id="{case_id}"]')
    assert said(locales, "console_waiting_for").split("{")[0] in row.text_content()
    row.click()
    summary = console.locator('[data-testid="summary"]')
    wait_until("the summary", lambda: summary.text_content())
    assert THAI.search(summary.text_content()), summary.text_content()
    claim = console.locator('[data-testid="claim"]')
    assert claim.is_visible()
    queue_shot = screenshot(console, "console-queue.png")

    # Thai really renders: Chromium drew the summary with a Thai font, and a Thai vowel mark
    # combines with its consonant (tofu boxes would each take their own width).
    fonts = platform_fonts(console, '[data-testid="summary"]')
    assert THAI_FONTS & {family for family, glyphs in fonts.items() if glyphs}, fonts
    widths = console.evaluate(
        """() => {
            const ctx = document.createElement("canvas").getContext("2d");
            ctx.font = getComputedStyle(document.querySelector('[data-testid="summary"]')).font;
            return [ctx.measureText("ก").width, ctx.measureText("กี").width];
        }"""
    )
    assert widths[0] > 0 and widths[0] == pytest.approx(widths[1]), widths

    # Claim: the child is told a person is here.
    claim.click()
    wait_until("the claim button gone", lambda: not claim.is_visible())
    console.locator(f'[data-testid="mine-item"][data-case-id="{case_id}"]').wait_for()
    assert console.locator(f'[data-testid="queue-item"][data-case-id="{case_id}"]').count() == 0
    wait_for_bubble(child, "bot", template(locales, "utter_handoff_assigned"))

    # The counsellor answers in Thai; the child's page shows it (polling), as a counsellor's.
    words = "สวัสดีค่ะ พี่อ่านเรื่องที่เล่าแล้วนะคะ ตอนนี้ปลอดภัยไหมคะ"
    reply_box = console.locator('[data-testid="reply-box"]')
    reply_box.fill(words)
    console.click('[data-testid="send"]')
    wait_until("the reply box emptied", lambda: reply_box.input_value() == "")
    wait_for_bubble(child, "counsellor", words)
    console.locator('[data-testid="transcript-row"][data-sender="counsellor"]').filter(
        has_text="พี่อ่านเรื่องที่เล่าแล้ว"
    ).wait_for()

    # The child writes; the counsellor sees it and the bot stays silent.
    bot_said = len(bubbles(child, "bot"))
    child_message = "หนูปลอดภัยค่ะ แต่มีคนขู่จะปล่อยรูป"
    with child.expect_response(
        lambda r: r.url.endswith("/webchat/messages") and r.request.method == "POST"
    ) as answer:
        child_types(child, child_message)
    reply = answer.value.json()
    assert reply["messages"] == [] and reply["mode"] == "assigned", reply
    console.locator('[data-testid="transcript-row"][data-sender="user"]').filter(
        has_text="มีคนขู่จะปล่อยรูป"
    ).wait_for()
    time.sleep(4)  # a few of the page's polls
    assert len(bubbles(child, "bot")) == bot_said, bubbles(child, "bot")[bot_said:]
    cursor = child.evaluate(
        "Math.max(...[...document.querySelectorAll('#log .msg.counsellor')]"
        ".map(e => Number(e.dataset.cursor)))"
    )
    later = httpx.get(f"{base}/webchat/messages", params={"user": user, "after": cursor}).json()
    assert later["messages"] == [] and later["mode"] == "assigned", later
    conversation_shot = screenshot(console, "console-conversation.png")

    # Close with the helpline's categories: none chosen is refused in words; one chosen closes,
    # the child is told, and the bot answers again.
    first = console.locator('[data-testid="category-1"]')
    assert first.locator("option").count() == 1 + CATEGORY_COUNT
    assert first.locator("optgroup").first.get_attribute("label") == "เด็กหาย"
    first.select_option("")
    console.click('[data-testid="close"]')
    toast = console.locator('[data-testid="toast"]')
    wait_until("the toast asking for a category", lambda: toast.is_visible())
    assert said(locales, "console_categories_needed") in toast.text_content()
    first.select_option("violence.online_sexual_exploitation")
    console.locator('[data-testid="category-2"]').select_option("mental_health.fear_anxiety")
    console.click('[data-testid="close"]')
    wait_for_bubble(child, "bot", said(locales, "utter_handoff_ended"))
    wait_until(
        "the case gone from 'my chats'",
        lambda: (
            console.locator(f'[data-testid="mine-item"][data-case-id="{case_id}"]').count() == 0
        ),
    )
    bot_said = len(bubbles(child, "bot"))
    child_types(child, "สวัสดี")
    wait_for_bubble(child, "bot", said(locales, "utter_greet"), after=bot_said)
    stored = stack.query(
        "SELECT category FROM case_categories WHERE case_id = :c ORDER BY position", {"c": case_id}
    )
    assert stored == [("violence.online_sexual_exploitation",), ("mental_health.fear_anxiety",)]

    for shot in (queue_shot, conversation_shot):
        assert shot.exists() and shot.stat().st_size > 20_000, shot
    missing = console.evaluate("[...window.consoleApp.missing]")
    assert missing == [], f"console labels missing from locales: {missing}"
    assert errors == []
    child_context.close()
    console_context.close()


def sign_in(context, username: str, password: str):
    page = context.new_page()
    page.goto("/console/login")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_url(re.compile(r"/console(\?.*)?$"))
    page.wait_for_selector('body[data-ready="true"]')
    return page


def no_identifiers(page) -> str:
    """The page's visible text; fails if any of it looks like a name from the code."""
    text = page.locator("body").inner_text()
    found = IDENTIFIER.findall(text)
    assert found == [], f"code identifiers on the screen: {found}"
    return text


@pytest.fixture
def supervisor(new_counsellor) -> tuple[str, str]:
    """Made before `browser` (see there)."""
    return new_counsellor("supervisor", "หัวหน้าเวร")


def test_a_supervisor_reads_labels_tabs_and_insights(stack, supervisor, locales, browser):
    """An urgent case waits, with its topics; the supervisor's console names everything in Thai
    and English (no code identifier), its sections are tabs, and insights render in Thai."""
    child = httpx.post(
        f"{stack.gateway_url}/webchat/messages",
        json={"user": f"child-{time.time_ns()}", "text": "ตอนนี้อยากตาย ไม่อยากอยู่แล้ว"},
        timeout=60,
    ).json()
    assert child["mode"] == "queued", child
    context = browser.new_context(viewport=VIEWPORT, base_url=stack.gateway_url, locale="th-TH")
    context.set_default_timeout(TIMEOUT_S * 1000)
    page = sign_in(context, *supervisor)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    tabs = page.locator('#tabs [role="tab"]')
    assert tabs.count() == 3
    assert page.locator('[data-testid="tab-cases"]').get_attribute("aria-selected") == "true"
    page.locator('[data-testid="tab-cases"]').focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.testid") == "supervisor-tab"
    page.keyboard.press("Enter")
    assert page.locator('[data-testid="supervisor-tab"]').get_attribute("aria-selected") == "true"
    page.locator('[data-testid="sup-audit-item"]').first.wait_for()
    page.locator('[data-testid="sup-open-item"]').first.wait_for()
    for language in ("th", "en"):
        page.click(f'[data-testid="lang-{language}"]')
        heads = [
            said(locales, f"console_col_{c}", language)
            for c in ("time", "who", "action", "case", "detail")
        ]
        wait_until(
            f"the audit log's column headers in {language}",
            lambda h=heads: page.locator('[data-testid="sup-audit"] th').all_text_contents() == h,
        )
        wait_until(
            "the topic labelled in the open chats",
            lambda lang=language: (
                said(locales, "label_topic_self_harm", lang)
                in page.locator('[data-testid="sup-open"]').inner_text()
            ),
        )
        no_identifiers(page)
    page.click('[data-testid="lang-th"]')
    assert page.evaluate("[...window.consoleApp.missing]") == []

    page.click('[data-testid="tab-insights"]')
    page.wait_for_url(re.compile(r"/console/insights"))
    page.locator('[data-testid="per-day"] svg').wait_for()
    text = no_identifiers(page)
    assert said(locales, "console_insights_per_day") in text
    assert said(locales, "console_insights_small") in text
    fonts = platform_fonts(page, '[data-testid="per-day"] h2')
    assert THAI_FONTS & {family for family, glyphs in fonts.items() if glyphs}, fonts
    shot = screenshot(page, "console-insights.png")
    assert shot.stat().st_size > 20_000
    assert errors == []
    context.close()
