"""The transactional outbox: a change's events are stored in the change's own transaction.

``stage`` writes one row per audience (the user's events of this change, or the
admins'); after commit ``hand_off`` gives the rows to the app's publisher, which
publishes at once. Rows it could not publish stay unpublished for the relay.
"""
from __future__ import annotations

import json

from flask import current_app

from .. import wire
from ..domain import events as ev
from ..extensions import db
from ..models import OutboxEvent, utcnow

ADMIN_EVENTS = (ev.TopupRequested, ev.TopupProcessed)


def stage(events: list) -> list[OutboxEvent]:
    """Add this change's events to the session as outbox rows (call inside the write transaction)."""
    rows = []
    by_user = [e for e in events if not isinstance(e, ADMIN_EVENTS)]
    for_admins = [e for e in events if isinstance(e, ADMIN_EVENTS)]
    if by_user:
        seq = next((e.seq for e in by_user if isinstance(e, ev.BalanceChanged)), None)
        rows.append(_row("user", by_user[0].user_id, seq, by_user))
    if for_admins:
        rows.append(_row("admins", None, None, for_admins))
    db.session.add_all(rows)
    db.session.flush()
    return rows


def _row(audience: str, user_id: int | None, seq: int | None, events: list) -> OutboxEvent:
    body = [{"event": name, "data": data} for name, data in map(wire.event, events)]
    return OutboxEvent(audience=audience, user_id=user_id, seq=seq, payload=json.dumps(body), created_at=utcnow())


def message(row: OutboxEvent) -> dict:
    """The documented ``balance:updates`` message for an outbox row."""
    return {
        "id": row.id,
        "audience": row.audience,
        "user_id": row.user_id,
        "seq": row.seq,
        "events": json.loads(row.payload),
    }


def hand_off(rows: list[OutboxEvent]) -> None:
    """After commit: give the committed rows to the publisher, if the app has one."""
    publisher = current_app.extensions.get("balance.publisher")
    if publisher is not None and rows:
        publisher.publish([message(r) for r in rows])
