"""A counsellor's voice (issue 15, section 5): the name the child sees and the Thai particle, set
by the counsellor in the console, are what the child reads when they join and in every canned
reply. Through the real app in-process on a migrated SQLite database and the real locales; the
console's form in a real browser on the real stack."""

from __future__ import annotations

import asyncio

from bot.store.handoff_models import Case
from tests.gateway.conftest import told
from tests.gateway.test_console_access import app_settings, world  # noqa: F401 (the fixture)
from tests.gateway.test_console_browser import browser, sign_in  # noqa: F401 (the fixture)

FEMININE = ("ค่ะ", "คะ")


async def set_voice(desk, body: dict, lang: str = "th"):  # noqa: ANN001, ANN201 (a Desk; a response)
    return await desk.client.post(
        f"/console/api/me?lang={lang}", json=body, headers={"X-CSRF-Token": desk.csrf}
    )


def test_a_counsellor_who_speaks_with_khrap_is_heard_with_khrap_and_their_name(
    app_settings,  # noqa: F811 (the fixture)
    locales,
):
    async def scenario() -> None:
        async with world(app_settings) as w:
            me = (await w.holder.client.get("/console/api/me")).json()
            assert me["particle"] == "ค่ะ"  # everyone's voice until they set theirs
            answer = await set_voice(w.holder, {"display_name": "  พี่ต้น ", "particle": "ครับ"})
            assert answer.status_code == 200, answer.text
            me = (await w.holder.client.get("/console/api/me")).json()
            assert (me["display_name"], me["particle"]) == ("พี่ต้น", "ครับ")

            case_id = await w.case(urgent=True, words="ช่วยด้วย")
            view = (await w.holder.client.get(f"/console/api/cases/{case_id}?lang=th")).json()
            canned = {item["id"]: item["text"] for item in view["canned"]}
            assert canned["hello"].startswith("สวัสดีครับ") and "พี่ต้น" in canned["hello"]
            for text in canned.values():
                assert text.endswith("ครับ") or text.endswith(")"), text
                assert not any(p in text for p in FEMININE), text

            assert (await w.holder.post(case_id, "claim")).status_code == 200
            async with w.sessions() as session:
                conversation_id = (await session.get(Case, case_id)).conversation_id
            joined = (await told(w.sessions, conversation_id))[-1]
            assert joined.startswith("สวัสดีครับ") and joined.endswith("ครับ"), joined
            assert "พี่ต้น" in joined and not any(p in joined for p in FEMININE), joined

            # A colleague who keeps ค่ะ still reads their canned replies with ค่ะ.
            other_case = await w.case(urgent=True, words="ช่วยด้วย")
            view = (await w.other.client.get(f"/console/api/cases/{other_case}?lang=th")).json()
            hello = next(i["text"] for i in view["canned"] if i["id"] == "hello")
            assert hello.startswith("สวัสดีค่ะ") and "พี่1" in hello, hello

    asyncio.run(scenario())


def test_a_bad_name_or_particle_is_refused_in_words_and_nothing_changes(
    app_settings,  # noqa: F811 (the fixture)
    locales,
):
    async def scenario() -> None:
        async with world(app_settings) as w:
            for body in (
                {"display_name": "พี่ต้น", "particle": "จ้า"},
                {"display_name": "   ", "particle": "ครับ"},
                {"display_name": "x" * 65, "particle": "ครับ"},
                {"display_name": 5, "particle": "ครับ"},
                {"particle": "ครับ"},
            ):
                answer = await set_voice(w.holder, body, lang="en")
                assert answer.status_code == 400, body
                assert answer.json() == {"error": locales.text("console_voice_invalid", "en")}
            no_csrf = await w.holder.client.post(
                "/console/api/me", json={"display_name": "พี่ต้น", "particle": "ครับ"}
            )
            assert no_csrf.status_code == 403
            me = (await w.holder.client.get("/console/api/me")).json()
            assert (me["display_name"], me["particle"]) == ("พี่0", "ค่ะ")

    asyncio.run(scenario())


def test_the_console_s_form_sets_the_voice(stack, counsellor, browser):  # noqa: F811
    """In Chromium: the header's form changes the name and particle the child will hear."""
    context = browser.new_context(base_url=stack.gateway_url, locale="th-TH")
    try:
        page = sign_in(context, *counsellor)
        page.locator("#voice-title").click()
        assert page.input_value('[data-testid="voice-name"]') == "พี่ฝน"
        page.fill('[data-testid="voice-name"]', "พี่ต้น")
        page.select_option('[data-testid="voice-particle"]', "ครับ")
        page.click('[data-testid="voice-save"]')
        page.wait_for_selector('[data-testid="me"]:text("พี่ต้น")')
        me = page.evaluate("fetch('/console/api/me').then((r) => r.json())")
        assert (me["display_name"], me["particle"]) == ("พี่ต้น", "ครับ")
    finally:
        context.close()
