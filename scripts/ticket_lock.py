"""Rasa's lock on a conversation, without the wait that never ends after a Rasa server died.

Rasa 3.6 serves a conversation's turns one at a time through a ticket lock (rasa/core/lock.py,
kept in Redis when several servers share one): a turn takes a ticket and waits while the ticket
"now serving" is not its own. Every ticket expires after TICKET_LOCK_LIFETIME, so that a server
that died holding one does not keep the child from the others for ever. But a waiting ticket
expires too, counted from when it was taken: when the dead server's ticket and the waiting one
were taken within the same second (the gateway sends the dead server's turn to the other at
once), the next look finds both expired, nothing is "now serving", and "nothing" is never the
waiting ticket's number: the turn waits until the gateway gives up on it (the scale test's kill
found it, a minute of silence for that child).

Here a ticket waits only while a live ticket taken before it exists: the same as Rasa's rule while
the waiting ticket lives, and served once the tickets before it have finished or expired when it
has expired itself. Installed by scripts/rasa_server.py.
"""

from __future__ import annotations

from rasa.core.lock import TicketLock


def is_locked(self: TicketLock, ticket_number: int) -> bool:
    """Whether a live ticket taken before `ticket_number` still holds or waits for the lock."""
    self.remove_expired_tickets()
    return any(ticket.number < ticket_number for ticket in self.tickets)


def install() -> None:
    TicketLock.is_locked = is_locked
