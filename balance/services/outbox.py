"""The transactional outbox: a change's events are stored in the change's own transaction.

``stage`` writes one row per audience (the user's events of this change, or the
admins') and returns their messages, built once the flush has given the rows their
ids; after commit ``hand_off`` gives those messages to the app's publisher, which
publishes at once. Rows it could not publish stay unpublished for the relay.

The messages are built before commit on purpose: reading the (expired) rows back
after commit would cost a query per row on the way to the sockets, and would make
the request's session hold a pool connection while the publisher takes a second one
to mark the rows published; with enough concurrent requests every connection of the
pool is held by a request waiting for another, and they all time out together.
"""
from __future__ import annotations

import json

from flask import current_app

from .. import wire
from ..domain import events as ev
from ..extensions import db
from ..models import OutboxEvent, utcnow

ADMIN_EVENTS = (ev.TopupRequested, ev.TopupProcessed)


def stage(events: list) -> list[dict]:
    """Add this change's events as outbox rows (inside the write transaction); return their messages."""
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
    return [message(r) for r in rows]


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


def hand_off(messages: list[dict]) -> None:
    """After commit: give the committed rows' messages (from ``stage``) to the publisher, if the app has one."""
    publisher = current_app.extensions.get("balance.publisher")
    if publisher is not None and messages:
        publisher.publish(messages)
