"""The summary a child sees before a counsellor joins, in plain words of the child's language.

It is exactly what the counsellor will read first (plus the transcript), so the child never has to
tell the story twice and is never surprised by what was shared.
"""

from __future__ import annotations

from typing import Any

from bot.locales import Locales

MAX_NOTE_CHARS = 500


def _label(locales: Locales, name: str, language: str) -> str | None:
    rendered = locales.render(name, language, {})
    return rendered.text if rendered else None


def _route(locales: Locales, route: str, language: str) -> str:
    facts = locales.routes.get(route) or {}
    own = facts.get(language) or {}
    name = own.get("short") or own.get("name") or route
    number = facts.get("number")
    return f"{name} {number}" if number and str(number) not in name else name


def summary_text(locales: Locales, summary: dict[str, Any], note: str | None, language: str) -> str:
    """One line per known fact; facts nobody said are left out rather than guessed."""
    lines: list[tuple[str, str | None]] = [
        (
            "language",
            _label(locales, f"label_language_{summary.get('language') or language}", language),
        ),
        ("role", _label(locales, f"label_role_{summary.get('role') or 'child'}", language)),
        ("age", _label(locales, f"label_age_{summary.get('age_band') or 'unknown'}", language)),
        (
            "topics",
            ", ".join(
                label
                for topic in summary.get("topics") or []
                if (label := _label(locales, f"label_topic_{topic}", language))
            )
            or None,
        ),
        (
            "routes",
            ", ".join(_route(locales, r, language) for r in summary.get("routes_given") or [])
            or None,
        ),
        ("note", note),
    ]
    out = []
    for field, value in lines:
        if value:
            line = locales.render(f"handoff_summary_{field}", language, {}, {"value": value})
            if line:
                out.append("• " + line.text)
    return "\n".join(out)
