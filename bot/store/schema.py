"""What Alembic compares with the database (migrations/env.py, and the test that migrations match
the models): every gateway table, and nothing else. On PostgreSQL Rasa's tracker store keeps its
`events` table in the same database, and `alembic revision --autogenerate` must not propose to
drop it.
"""

from __future__ import annotations

from typing import Any

from bot.store import handoff_models  # noqa: F401 (its tables join Base.metadata on import)
from bot.store.models import Base

metadata = Base.metadata


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Only the tables our models define; Alembic asks before it reflects a table."""
    return type_ != "table" or name in metadata.tables


def alembic_options() -> dict[str, Any]:
    """The comparison settings for Alembic's context, the same wherever it is configured."""
    return {"target_metadata": metadata, "include_name": include_name}
