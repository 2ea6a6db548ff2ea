"""Every user-facing sentence comes from `locales/`; this module picks and fills them.

A locale file maps response names to a list of variants. A variant may carry `when:` (slot values
such as `age_band`, `role` or `channel`); the first variant whose conditions all hold is used, so
specific variants come first and the plain one last. `{route.field}` placeholders are filled from
`locales/routes.yml`, the one place each reporting route's facts live: a field is looked up in the
route's own language section first (`th:` / `en:`), then among its language-neutral facts.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from bot.message import Button, Outgoing

log = logging.getLogger(__name__)

# Facts kept beside the sentences, not sentences of a language: routes, contact categories.
DATA_FILES = ("routes.yml", "categories.yml")
_PLACEHOLDER = re.compile(r"\{([a-z0-9_]+)\.([a-z0-9_]+)\}")
_VALUE = re.compile(r"\{([a-z_]+)\}")


class LocaleError(ValueError):
    """A locale file refers to something that does not exist."""


@dataclass(frozen=True)
class Variant:
    when: Mapping[str, str]
    text: str
    buttons: tuple[Button, ...]

    def matches(self, context: Mapping[str, Any]) -> bool:
        return all(str(context.get(key)) == str(value) for key, value in self.when.items())


class Locales:
    """The loaded sentences of every language, with route facts already filled in."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._texts: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
        self.routes = self._load_routes(directory / "routes.yml")
        self.responses: dict[str, dict[str, list[Variant]]] = {}
        for path in sorted(directory.glob("*.yml")):
            if path.name in DATA_FILES:
                continue
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            language = data["language"]
            self.responses[language] = {
                name: [self._variant(language, name, v) for v in variants]
                for name, variants in data["responses"].items()
            }

    @property
    def languages(self) -> list[str]:
        return sorted(self.responses)

    def has(self, name: str) -> bool:
        return any(name in table for table in self.responses.values())

    def render(
        self,
        name: str,
        language: str,
        context: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
    ) -> Outgoing | None:
        """The variant of `name` for this language and context, with `{value}` slots filled;
        None if the language lacks it."""
        table = self.responses.get(language) or {}
        for variant in table.get(name) or ():
            if variant.matches(context):
                text = variant.text
                if values:
                    text = _VALUE.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)
                return Outgoing(text=text, buttons=variant.buttons)
        return None

    def say(
        self,
        name: str,
        language: str,
        context: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> Outgoing:
        """`render` for a message to a user, who must never get nothing: a sentence missing from
        this language is logged and the fallback is said instead."""
        rendered = self.render(name, language, context or {}, values)
        if rendered is None:
            log.error("locales/%s.yml has no %s", language, name)
            rendered = self.render("utter_fallback", language, {})
        return rendered  # type: ignore[return-value]

    def text(self, name: str, language: str, values: Mapping[str, Any] | None = None) -> str:
        """Just the sentence (labels, console strings); the name itself if it is missing."""
        rendered = self.render(name, language, {}, values)
        return rendered.text if rendered else name

    def texts(self, language: str, prefixes: tuple[str, ...]) -> dict[str, str]:
        """Every sentence of one language named with one of `prefixes`, made once: the console
        sends its labels with every page, and the sentences do not change while running."""
        key = (language, prefixes)
        if key not in self._texts:
            table = self.responses.get(language) or {}
            self._texts[key] = {
                name: self.text(name, language) for name in table if name.startswith(prefixes)
            }
        return self._texts[key]

    def button_title(self, payload: str, language: str) -> str | None:
        """The title of a button that sends `payload`: how a press reads in a transcript."""
        for variants in (self.responses.get(language) or {}).values():
            for variant in variants:
                for button in variant.buttons:
                    if button.payload == payload:
                        return button.title
        return None

    def sentences(self) -> list[tuple[str, str, str]]:
        """(language, name, text) of every variant and button title: all a reviewer reads."""
        out = []
        for language, table in self.responses.items():
            for name, variants in table.items():
                for variant in variants:
                    out.append((language, name, variant.text))
                    out.extend((language, name, b.title) for b in variant.buttons)
        return out

    def _variant(self, language: str, name: str, raw: Mapping[str, Any]) -> Variant:
        where = f"{language}:{name}"
        buttons = tuple(
            Button(title=self._fill(b["title"], language, where), payload=b["payload"])
            for b in raw.get("buttons") or ()
        )
        return Variant(
            when=raw.get("when") or {},
            text=self._fill(str(raw["text"]).strip(), language, where),
            buttons=buttons,
        )

    def _fill(self, text: str, language: str, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            route, field = match.groups()
            facts = self.routes.get(route) or {}
            value = (facts.get(language) or {}).get(field, facts.get(field))
            if value is None or isinstance(value, dict):
                raise LocaleError(f"{where}: unknown fact {{{route}.{field}}}")
            return str(value).strip()

        return _PLACEHOLDER.sub(replace, text)

    @staticmethod
    def _load_routes(path: Path) -> dict[str, dict[str, Any]]:
        if not path.exists():
            return {}
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return data.get("routes", {})
