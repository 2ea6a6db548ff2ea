"""End to end: web chat → gateway → Rasa (trained model) → actions → /nlg → locales."""

from __future__ import annotations

import uuid

import httpx
import pytest


def texts(reply: dict) -> list[str]:
    return [m["text"] for m in reply["messages"]]


def new_user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def test_thai_greeting_is_answered_in_thai_from_locales(chat, locales):
    reply = chat(new_user(), "สวัสดี")
    assert reply["mode"] == "bot"
    assert texts(reply) == [locales.render("utter_greet", "th", {}).text]
    buttons = reply["messages"][0]["buttons"]
    assert {"title": "English", "payload": '/choose_language{"language":"en"}'} in buttons


def test_english_greeting_is_answered_in_english_from_locales(chat, locales):
    reply = chat(new_user(), "hello")
    assert texts(reply) == [locales.render("utter_greet", "en", {}).text]


def test_a_language_button_switches_the_language(chat, locales):
    user = new_user()
    chat(user, "สวัสดีค่ะ")
    reply = chat(user, '/choose_language{"language":"en"}')
    assert texts(reply) == [locales.render("utter_language_changed", "en", {}).text]


def test_button_payloads_are_routed_like_text(chat, locales):
    reply = chat(new_user(), "/talk_to_human")
    assert reply["mode"] == "offered"
    assert texts(reply)[0].startswith(locales.text("utter_handoff_summary", "th").split("{")[0])


def test_platform_ids_are_stored_only_as_keyed_hashes(chat, stack):
    user = f"raw-id-{uuid.uuid4().hex}"
    chat(user, "hello")
    keys = [row[0] for row in stack.query("select user_key from conversations")]
    assert keys and all(user not in key for key in keys)


def test_malformed_requests_get_a_4xx_and_touch_nothing(stack):
    url = f"{stack.gateway_url}/webchat/messages"
    assert httpx.post(url, content=b"{not json").status_code == 400
    assert httpx.post(url, json=["a"]).status_code == 400
    assert httpx.post(url, json={"user": "a"}).status_code == 400
    assert httpx.post(url, json={"user": "", "text": "hi"}).status_code == 400
    assert httpx.post(url, json={"user": "a", "text": 5}).status_code == 400
    assert httpx.post(url, content=b"\xff\xfe").status_code == 400
    assert httpx.post(url, json={"user": "a", "text": "x" * 70_000}).status_code == 413


def test_odd_messages_get_a_kind_reply(chat, locales):
    assert texts(chat(new_user(), "\u200b\u200b  ")) == [
        locales.render("utter_empty_message", "th", {}).text
    ]
    for odd in ("🙏🙏🙏", "ก" * 10_000, "\u202eevil\u202c"):
        reply = chat(new_user(), odd)
        assert reply["messages"] and all(m["text"] for m in reply["messages"])


def test_the_page_renders_thai(stack):
    page = httpx.get(stack.gateway_url + "/")
    assert page.status_code == 200
    assert "charset=utf-8" in page.headers["content-type"]
    assert 'lang="th"' in page.text


def test_nlg_refuses_a_wrong_token(stack):
    body = {"response": "utter_greet", "tracker": {"slots": {}}}
    assert httpx.post(f"{stack.gateway_url}/nlg?token=wrong", json=body).status_code == 401


def test_with_rasa_stopped_the_user_still_gets_the_fallback_then_recovery(chat, stack, locales):
    user = new_user()
    chat(user, "สวัสดีค่ะ")
    every_rasa = tuple(stack.rasa_names)
    stack.stop(every_rasa)
    try:
        reply = chat(user, "มีคนขู่จะปล่อยรูป")
        fallback = locales.render("utter_fallback", "th", {}).text
        assert texts(reply) == [fallback]
        assert "1387" in fallback and "1300" in fallback and "191" in fallback
        assert any(b["payload"] == "/talk_to_human" for b in reply["messages"][0]["buttons"])
        english = chat(new_user(), "hello, anyone there?")
        assert texts(english) == [locales.render("utter_fallback", "en", {}).text]
    finally:
        stack.start(every_rasa)
    assert texts(chat(user, "สวัสดี")) == [locales.render("utter_greet", "th", {}).text]


@pytest.mark.parametrize(
    "language, disclosure",
    [
        ("th", "มีคนขู่ว่าจะปล่อยรูปหนูถ้าไม่ส่งรูปเพิ่ม"),
        ("en", "this guy says he will share my pics with my school unless i pay him"),
    ],
)
def test_a_sextortion_disclosure_gets_not_your_fault_then_steps_then_routes_and_a_person(
    chat, locales, language, disclosure
):
    reply = chat(new_user(), disclosure)
    context = {"channel": "webchat"}
    expected = [
        locales.render(f"utter_sextortion_{part}", language, context)
        for part in ("first", "steps", "routes")
    ]
    messages = reply["messages"]
    assert [m["text"] for m in messages[:3]] == [e.text for e in expected]
    assert "fault" in messages[0]["text"] or "ไม่ใช่ความผิด" in messages[0]["text"]
    assert any(b["payload"] == "/talk_to_human" for m in messages[2:] for b in m["buttons"])
