"""A counsellor's voice: the name the child sees and the Thai particle they speak with.

Thai sentences in locales/ that a counsellor says (canned replies, "a counsellor has joined") end
with `{particle}` (ค่ะ or ครับ) and, where a softer or questioning ending is needed, `{particle_soft}`
(คะ or ครับ), so a counsellor who speaks with ครับ is never made to say ค่ะ.
"""

from __future__ import annotations

from typing import Any

from bot.store.handoff_models import Counsellor

# particle -> its soft / questioning form (นะคะ, ไหมคะ; นะครับ, ไหมครับ)
PARTICLES = {"ค่ะ": "คะ", "ครับ": "ครับ"}
DEFAULT_PARTICLE = "ค่ะ"
MAX_NAME_CHARS = 64


class VoiceError(ValueError):
    """A name or particle the child must not be shown."""


def values(counsellor: Counsellor) -> dict[str, Any]:
    """The `{name}`, `{particle}` and `{particle_soft}` of this counsellor's sentences."""
    particle = counsellor.particle if counsellor.particle in PARTICLES else DEFAULT_PARTICLE
    return {
        "name": counsellor.display_name,
        "particle": particle,
        "particle_soft": PARTICLES[particle],
    }


def checked(display_name: object, particle: object) -> tuple[str, str]:
    """A display name of 1 to 64 printable characters and a known particle, or VoiceError."""
    if not isinstance(display_name, str) or not isinstance(particle, str):
        raise VoiceError("display_name and particle must be text")
    name = " ".join(display_name.split())
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise VoiceError("display_name must have 1 to 64 characters")
    if particle not in PARTICLES:
        raise VoiceError(f"particle must be one of {', '.join(PARTICLES)}")
    return name, particle
