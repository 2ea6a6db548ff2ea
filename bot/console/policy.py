"""Who may do what to a case in the console: one table, read by every console route.

A refusal is answered like a missing case (404): a counsellor learns nothing about a case that is
not theirs to see, not even that it exists. A case the child has not sent yet (offered) is nobody's
to see; a queued case shows only the summary the child approved, until someone claims it; the
transcript belongs to the counsellor who holds the case and to supervisors; a closed case is
supervisors' only. docs/PRIVACY.md and docs/HANDOFF.md say the same in words.
"""

from __future__ import annotations

from typing import Literal

from bot.store.handoff_models import Case, Counsellor

Action = Literal["summary", "transcript", "claim", "assign", "reply", "note", "transfer", "close"]
Who = Literal["anyone", "holder", "supervisor"]
ACTIONS: tuple[Action, ...] = (
    "summary", "transcript", "claim", "assign", "reply", "note", "transfer", "close",
)  # fmt: skip

# (case state, action) -> who may. Anything not listed: nobody.
#   "anyone"     every signed-in counsellor
#   "holder"     the counsellor the case is assigned to, and supervisors
#   "supervisor" supervisors only
RULES: dict[tuple[str, Action], Who] = {
    ("queued",   "summary"):    "anyone",
    ("queued",   "claim"):      "anyone",
    ("queued",   "assign"):     "supervisor",
    ("assigned", "summary"):    "holder",
    ("assigned", "transcript"): "holder",
    ("assigned", "reply"):      "holder",
    ("assigned", "note"):       "holder",
    ("assigned", "transfer"):   "holder",
    ("assigned", "close"):      "holder",
    ("closed",   "summary"):    "supervisor",
    ("closed",   "transcript"): "supervisor",
}  # fmt: skip


def allowed(counsellor: Counsellor, action: Action, case: Case | None) -> bool:
    """Whether `counsellor` may do `action` to `case` (None: a missing case, never)."""
    who = RULES.get((case.state, action)) if case is not None else None
    if who is None:
        return False
    return (
        who == "anyone"
        or counsellor.role == "supervisor"
        or (who == "holder" and case.counsellor_id == counsellor.id)
    )


def supervises(counsellor: Counsellor) -> bool:
    """Pages about the whole service rather than one case (insights): supervisors only."""
    return counsellor.role == "supervisor"
