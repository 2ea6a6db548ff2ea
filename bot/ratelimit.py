"""How often one child, or one address, may ask: an in-process sliding-window limiter.

Two limits, both per minute and configurable (bot/config.py):

- **Per user** (`RATE_USER_PER_MIN`, default 20), applied once, in the router, just before a
  message would go to Rasa. A child over it gets `utter_rate_limited` from locales/ in their
  language, recorded like any other reply, and Rasa is not asked. Nothing else is limited per
  user: a kind answer to a sticker or an empty message costs nothing, and while a person has the
  chat (conversation mode != "bot") the child's words go to the counsellor and never reach this
  check, so a child is never rate-limited away from a counsellor. 20 a minute is still far above
  how fast anyone types; it stops scripts and stuck clients, not children.
- **Per client address** (`RATE_IP_PER_MIN`, default 600), applied to the web chat only
  (POST and GET /webchat/messages); over it the web chat answers 429 with `utter_rate_limited`
  in `messages`, so the page shows it. LINE and Telegram are not limited by address: each
  platform sends every user's events from a few addresses, and their webhooks are already
  authenticated (signature, secret token). The default is generous because a school or a
  mobile network puts many children behind one address, and the page polls every 1.5 s
  (40 requests a minute per open chat).

**Behind a reverse proxy** every request comes from the proxy's address, so the client's address
is taken from X-Forwarded-For, but only on requests from a peer listed in `TRUSTED_PROXIES`
(default `127.0.0.1,::1`, a proxy on this machine; addresses or networks, bot/proxies.py), and
only the right-most address there that is not itself trusted: the one the proxy wrote, never what
the client wrote before it. From any other peer the header is ignored, so a client cannot dodge
the limit by making up addresses. The proxy must append the address it saw (nginx:
`proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`).

Requests whose address is still the machine itself (127.0.0.1, ::1) or a trusted proxy are not
limited by address: that is the local page, the tests, a child on the proxy's own host, or a
proxy that did not pass the client's address on, and limiting it would throttle every child at
once.

Counting is a sliding window of one minute kept in 5-second slots, so each key costs at most
12 small counters. Keys idle for a whole window are dropped, and at most `max_keys` are kept
(the least recently seen go first), so memory stays bounded whatever arrives. A refused request
is not counted: a child who waits a minute is always let through again. Not shared between
gateway processes: each counts what it sees.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from bot.proxies import Network, is_trusted

WINDOW_S = 60.0
SLOTS = 12
MAX_KEYS = 50_000
# Addresses that are the machine itself; see the module docstring.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class RateLimiter:
    """At most `limit` hits per `window_s` for each key; `limit` <= 0 means no limit."""

    def __init__(
        self,
        limit: int,
        window_s: float = WINDOW_S,
        slots: int = SLOTS,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._slot_s = window_s / slots
        self._slots = slots
        self._max_keys = max_keys
        self._clock = clock
        # key -> deque of [slot number, hits in that slot], oldest first; least recently seen
        # key first.
        self._hits: OrderedDict[str, deque[list[int]]] = OrderedDict()

    @property
    def keys(self) -> int:
        """How many keys are being counted (bounded by `max_keys`)."""
        return len(self._hits)

    def hit(self, key: str) -> bool:
        """Counts one hit for `key` and says whether it is allowed; a refused hit is not
        counted."""
        if self.limit <= 0:
            return True
        now = self._slot()
        slots = self._hits.get(key)
        if slots is None:
            slots = self._hits[key] = deque()
        self._hits.move_to_end(key)
        _expire(slots, now - self._slots)
        allowed = sum(count for _, count in slots) < self.limit
        if allowed:
            if slots and slots[-1][0] == now:
                slots[-1][1] += 1
            else:
                slots.append([now, 1])
        self._evict(now)
        return allowed

    def retry_after(self, key: str) -> int:
        """Whole seconds until `key` may be allowed again (0 when it may now)."""
        slots = self._hits.get(key)
        if self.limit <= 0 or not slots:
            return 0
        _expire(slots, self._slot() - self._slots)
        total = sum(count for _, count in slots)
        if total < self.limit:
            return 0
        for slot, count in slots:  # hits leave the window oldest slot first
            total -= count
            if total < self.limit:
                free_at = (slot + self._slots) * self._slot_s
                return max(1, math.ceil(free_at - self._clock()))
        return math.ceil(self._slots * self._slot_s)  # not reached: limit > 0

    def _slot(self) -> int:
        return int(self._clock() // self._slot_s)

    def _evict(self, now: int) -> None:
        """Drops keys idle for a whole window (from the least recently seen), then the least
        recently seen beyond `max_keys`."""
        oldest = now - self._slots
        while self._hits:
            key, slots = next(iter(self._hits.items()))
            if slots and slots[-1][0] > oldest:
                break
            del self._hits[key]
        while len(self._hits) > self._max_keys:
            self._hits.popitem(last=False)


def _expire(slots: deque[list[int]], oldest: int) -> None:
    while slots and slots[0][0] <= oldest:
        slots.popleft()


def client_address(
    scope_client: tuple[str, int] | None, trusted: tuple[Network, ...] = ()
) -> str | None:
    """The address to limit by (uvicorn has already put X-Forwarded-For's client in the scope),
    or None for the machine itself or a trusted proxy (not limited by address)."""
    if not scope_client:
        return None
    host = scope_client[0]
    return None if host in LOOPBACK or is_trusted(host, trusted) else host
