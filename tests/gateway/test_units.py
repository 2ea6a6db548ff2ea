"""Small pure pieces of the gateway."""

from bot.identity import user_key
from bot.language import detect
from bot.store.db import async_url, sync_url


def test_user_keys_are_stable_keyed_and_do_not_reveal_the_id():
    a = user_key("secret", "line", "U123")
    assert a == user_key("secret", "line", "U123")
    assert a != user_key("other", "line", "U123")
    assert a != user_key("secret", "telegram", "U123")
    assert "U123" not in a and len(a) <= 64


def test_language_detection():
    assert detect("โดน blackmail") == "th"
    assert detect("hello") == "en"
    assert detect("🙏 123") is None


def test_database_urls_get_the_right_drivers():
    assert async_url("sqlite:///var/x.db") == "sqlite+aiosqlite:///var/x.db"
    assert async_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sync_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
