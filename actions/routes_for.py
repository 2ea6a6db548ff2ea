"""Which reporting routes fit which situation and who is asking (CONTENT.md's table).

The sentences that present them are in locales/; this list records what was offered, so the
counsellor's summary can say which routes the child has already been given.
"""

from __future__ import annotations

from typing import List

ROUTES_BY_TOPIC = {
    "sextortion": ["ticac", "saidek_1387", "takeitdown"],
    "image_shared": ["thaihotline", "takeitdown", "ticac", "saidek_1387"],
    "grooming": ["ticac", "saidek_1387"],
    "abuse_disclosure": ["helpline_1300", "saidek_1387"],
    "other_harm": ["helpline_1300", "saidek_1387"],
    "self_harm": ["mental_health_1323", "ambulance_1669", "saidek_1387"],
    "immediate_danger": ["police", "ess_helpme", "helpline_1300"],
}

CAREGIVER_ROUTES = {
    "sextortion": ["ticac", "helpline_1300", "saidek_1387", "takeitdown"],
    "image_shared": ["thaihotline", "ticac", "helpline_1300", "takeitdown"],
    "grooming": ["ticac", "helpline_1300", "saidek_1387"],
}


def routes_for(topic: str, role: str | None) -> List[str]:
    if role == "caregiver" and topic in CAREGIVER_ROUTES:
        return CAREGIVER_ROUTES[topic]
    return ROUTES_BY_TOPIC.get(topic, [])
