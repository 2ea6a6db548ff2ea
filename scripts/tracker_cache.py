"""Rasa's SQL tracker store without reading the whole conversation back at every turn.

Rasa 3.6's SQLTrackerStore, on every turn, reads every event of the conversation's session and
replays them into a tracker (`retrieve`), then counts those events again to know which ones are
new (`save`): about a third of a Rasa server's CPU per turn in `make bench`'s profile. Here a Rasa
server keeps the trackers it has just saved, and uses one again only while the database still holds
exactly what it saved: the number of the sender's events and the id of the last one, read with
one indexed query, are what they were (no other Rasa server has written a turn of this child, and
the gateway has not erased or purged any of its words), and the tracker has nothing added since
(a turn that failed half-way). Anything else reads the conversation from the database as Rasa
does. A saved session start is not kept: Rasa reads only the latest session back.

Installed by scripts/rasa_server.py.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker

KEPT = 512  # trackers per Rasa server, the least recently used dropped first (a few MB)

Mark = tuple[int, Any]  # the sender's events in the database: how many, the last id


@dataclass
class _Kept:
    tracker: DialogueStateTracker
    stored: int  # its first `stored` events are in the database
    mark: Mark


class _Trackers:
    def __init__(self, size: int = KEPT) -> None:
        self._size = size
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    def get(self, sender_id: str) -> _Kept | None:
        kept = self._kept.get(sender_id)
        if kept is not None:
            self._kept.move_to_end(sender_id)
        return kept

    def put(self, sender_id: str, kept: _Kept) -> None:
        self._kept[sender_id] = kept
        self._kept.move_to_end(sender_id)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)

    def drop(self, sender_id: str) -> None:
        self._kept.pop(sender_id, None)


_retrieve = SQLTrackerStore.retrieve
_save = SQLTrackerStore.save
_additional_events = SQLTrackerStore._additional_events


def _trackers(store: SQLTrackerStore) -> _Trackers:
    return store.__dict__.setdefault("_kept_trackers", _Trackers())


def _mark(store: SQLTrackerStore, sender_id: str) -> Mark:
    event = store.SQLEvent
    with store.session_scope() as session:
        count, last = (
            session.query(sa.func.count(event.id), sa.func.max(event.id))
            .filter(event.sender_id == sender_id)
            .one()
        )
    return int(count), last


async def retrieve(self: SQLTrackerStore, sender_id: str) -> DialogueStateTracker | None:
    trackers = _trackers(self)
    kept = trackers.get(sender_id)
    mark = _mark(self, sender_id)  # before reading: a write after it only makes the next a miss
    if kept is not None and kept.mark == mark and len(kept.tracker.events) == kept.stored:
        return kept.tracker
    trackers.drop(sender_id)
    tracker = await _retrieve(self, sender_id)
    if tracker is not None:
        trackers.put(sender_id, _Kept(tracker, len(tracker.events), mark))
    return tracker


def additional_events(self: SQLTrackerStore, session: Any, tracker: DialogueStateTracker) -> Any:
    """The events not in the database yet: counted in the database only for a tracker not kept."""
    kept = _trackers(self).get(tracker.sender_id)
    if kept is None or kept.tracker is not tracker:
        return _additional_events(self, session, tracker)
    return list(tracker.events)[kept.stored :]


async def save(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
    trackers = _trackers(self)
    kept = trackers.get(tracker.sender_id)
    if kept is None or kept.tracker is not tracker:
        trackers.drop(tracker.sender_id)
        await _save(self, tracker)
        return
    new = list(tracker.events)[kept.stored :]
    await _save(self, tracker)
    if any(isinstance(event, SessionStarted) for event in new):
        trackers.drop(tracker.sender_id)
        return
    kept.stored, kept.mark = len(tracker.events), _mark(self, tracker.sender_id)


def install() -> None:
    SQLTrackerStore.retrieve = retrieve
    SQLTrackerStore.save = save
    SQLTrackerStore._additional_events = additional_events
