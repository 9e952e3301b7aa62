"""What a user's dashboard shows on first paint, read in one place: balance with its seq, history, rooms.

The page's scripts continue from the ``seq`` read here, so whatever changes between
this read and the socket's connect is replayed rather than lost.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import booking, history, snapshots


@dataclass(frozen=True)
class Dashboard:
    snapshot: snapshots.Snapshot
    transactions: history.Page
    rooms: tuple[booking.Room, ...]


def dashboard(user_id: int, limit: int, cursor: str | None) -> Dashboard:
    return Dashboard(snapshots.current(user_id), history.transactions_of(user_id, limit, cursor), booking.rooms())
