"""The contact categories a counsellor records when a chat ends (locales/categories.yml).

Childline Thailand's own list (Child Helpline International's framework), so the assistant's figures
compare with the helpline's without a mapping table. A case gets one to three subcategories; the
assistant's topic pre-selects a suggestion the counsellor confirms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_PER_CASE = 3
LANGUAGES = ("th", "en")


class CategoryError(ValueError):
    """A close asked for categories that are not one to three known, distinct ones."""


@dataclass(frozen=True)
class Category:
    id: str
    labels: dict[str, str]
    parent: str | None  # the top-level category of a subcategory


class Categories:
    def __init__(self, path: Path) -> None:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.top: list[Category] = []
        self.sub: dict[str, Category] = {}
        for group in raw["categories"]:
            self.top.append(Category(group["id"], {k: group[k] for k in LANGUAGES}, None))
            for item in group["subcategories"]:
                labels = {k: item[k] for k in LANGUAGES}
                self.sub[item["id"]] = Category(item["id"], labels, group["id"])
        self.suggestions: dict[str, str] = dict(raw.get("suggest") or {})
        unknown = set(self.suggestions.values()) - set(self.sub)
        if unknown:
            raise CategoryError(f"suggested categories that do not exist: {sorted(unknown)}")

    def listing(self) -> list[dict[str, Any]]:
        """Every category with its subcategories: ids and labels in both languages."""
        return [
            {
                "id": top.id,
                **top.labels,
                "subcategories": [
                    {"id": sub.id, **sub.labels}
                    for sub in self.sub.values()
                    if sub.parent == top.id
                ],
            }
            for top in self.top
        ]

    def label(self, category_id: str, language: str) -> str:
        """ "Category / subcategory" in one language, as a counsellor reads it."""
        sub = self.sub[category_id]
        parent = next(top for top in self.top if top.id == sub.parent)
        return f"{parent.labels[language]} / {sub.labels[language]}"

    def checked(self, chosen: object) -> list[str]:
        """The ids a close may store: one to three distinct known subcategories, in order."""
        if not isinstance(chosen, list) or not all(isinstance(c, str) for c in chosen):
            raise CategoryError("categories must be a list of category ids")
        if not 1 <= len(chosen) <= MAX_PER_CASE:
            raise CategoryError(f"choose 1 to {MAX_PER_CASE} categories")
        if len(set(chosen)) != len(chosen):
            raise CategoryError("a category was chosen twice")
        unknown = [c for c in chosen if c not in self.sub]
        if unknown:
            raise CategoryError(f"unknown categories: {unknown}")
        return list(chosen)

    def suggested(self, topics: list[str]) -> list[str]:
        """What the assistant's topics pre-select, most recent topic first, at most three."""
        out: list[str] = []
        for topic in reversed(topics):
            category = self.suggestions.get(topic)
            if category and category not in out:
                out.append(category)
        return out[:MAX_PER_CASE]
