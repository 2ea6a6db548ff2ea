"""Insights as people read them: labelled rows for the page and the CSV export, in one language.

The figures come from bot/console/insights.py already suppressed; this module only names them
(locales/ and locales/categories.yml), so no code identifier reaches a supervisor's screen.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from bot.console import svg
from bot.console.insights import CHANNELS, SMALL, UNKNOWN
from bot.handoff.categories import Categories
from bot.locales import Locales


class Labels:
    def __init__(self, locales: Locales, categories: Categories, language: str) -> None:
        self._locales = locales
        self._categories = categories
        self.language = language

    def __call__(self, name: str, **values: Any) -> str:
        return self._locales.text(name, self.language, values or None)

    def _optional(self, name: str) -> str:
        if name.endswith(f"_{UNKNOWN}") or not self._locales.has(name):
            return self("console_insights_unknown")
        return self(name)

    def channel(self, key: str) -> str:
        return self._optional(f"console_channel_{key}")

    def language_name(self, key: str) -> str:
        return self._optional(f"label_language_{key}")

    def age(self, key: str) -> str:
        return self._optional(f"label_age_{key}")

    def role(self, key: str) -> str:
        return self._optional(f"label_role_{key}")

    def category(self, key: str) -> str:
        return self._categories.label(key, self.language) if key in self._categories.sub else key


def rows(data: dict[str, Any], label: Labels) -> list[tuple[str, str, str, Any]]:
    """(measure, group id, group label, value): every aggregate of `data`, one per line."""
    out: list[tuple[str, str, str, Any]] = [
        ("contacts", "", label("console_insights_total"), data["contacts"])
    ]
    for day in data["per_day"]:
        for channel in CHANNELS:
            out.append(
                (
                    "contacts_per_day",
                    f"{day['day']} {channel}",
                    f"{day['day']} {label.channel(channel)}",
                    day[channel],
                )
            )
    out += [("by_channel", k, label.channel(k), v) for k, v in data["by_channel"].items()]
    out += [("by_language", k, label.language_name(k), v) for k, v in data["by_language"].items()]
    out += [
        ("by_category", c["id"], label.category(c["id"]), c["count"]) for c in data["by_category"]
    ]
    out += [
        (
            "by_age_role",
            f"{r['age_band']} {r['role']}",
            f"{label.age(r['age_band'])} / {label.role(r['role'])}",
            r["count"],
        )
        for r in data["by_age_role"]
    ]
    out += [
        ("handed", "", label("console_insights_handed"), data["handed"]),
        ("handed_percent", "", label("console_insights_share"), data["handed_percent"]),
    ]
    for measure, title in (
        ("wait_s", "console_insights_wait"),
        ("first_reply_s", "console_insights_first_reply"),
    ):
        for key in ("count", "p50", "p90"):
            out.append((measure, key, f"{label(title)}: {key}", data[measure][key]))
    out += [
        ("left_queue", "", label("console_insights_left"), data["left_queue"]),
        ("out_of_hours", "", label("console_insights_out_of_hours"), data["out_of_hours"]),
        ("repeat", "", label("console_insights_repeat"), data["repeat"]),
        ("helped", "yes", label("console_insights_helped_yes"), data["helped"]["yes"]),
        ("helped", "no", label("console_insights_helped_no"), data["helped"]["no"]),
    ]
    return out


def as_csv(data: dict[str, Any], label: Labels) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["from", "to", "measure", "group", "label", "value"])
    for measure, group, text, value in rows(data, label):
        writer.writerow(
            [data["from"], data["to"], measure, group, text, "" if value is None else value]
        )
    return buffer.getvalue()


def _duration(label: Labels, figures: dict[str, Any]) -> str:
    if figures["p50"] is None:
        return f"{label('console_insights_cases')}: {figures['count']}"
    p50 = label("console_insights_seconds", value=figures["p50"])
    p90 = label("console_insights_seconds", value=figures["p90"])
    return (
        f"{label('console_insights_p50')} {p50} · {label('console_insights_p90')} {p90}"
        f" ({label('console_insights_cases')}: {figures['count']})"
    )


def page(data: dict[str, Any], label: Labels) -> dict[str, Any]:
    """What the insights template shows: tiles, charts and the age × role table."""
    share = data["handed_percent"]
    handed = f"{data['handed']}" + (f" ({share}%)" if share not in (None, SMALL) else "")
    helped = data["helped"]
    return {
        "tiles": [
            (label("console_insights_contacts"), data["contacts"], "contacts"),
            (label("console_insights_handed"), handed, "handed"),
            (label("console_insights_wait"), _duration(label, data["wait_s"]), "wait"),
            (
                label("console_insights_first_reply"),
                _duration(label, data["first_reply_s"]),
                "first-reply",
            ),
            (label("console_insights_left"), data["left_queue"], "left"),
            (label("console_insights_out_of_hours"), data["out_of_hours"], "out-of-hours"),
            (label("console_insights_repeat"), data["repeat"], "repeat"),
            (
                label("console_insights_helped"),
                f"{label('console_insights_helped_yes')} {helped['yes']} · "
                f"{label('console_insights_helped_no')} {helped['no']}",
                "helped",
            ),
        ],
        "per_day": svg.stacked_days(
            data["per_day"],
            [(c, label.channel(c)) for c in CHANNELS],
            label("console_insights_per_day"),
        ),
        "by_category": svg.bars(
            [(label.category(c["id"]), c["count"]) for c in data["by_category"]],
            label("console_insights_by_category"),
        ),
        "by_language": svg.bars(
            [(label.language_name(k), v) for k, v in data["by_language"].items()],
            label("console_insights_by_language"),
        ),
        "age_role": [
            (label.age(r["age_band"]), label.role(r["role"]), r["count"])
            for r in data["by_age_role"]
        ],
    }
