"""The transactional outbox: a change's events are stored in the change's own transaction.

``stage`` writes one row per audience (the user's events of this change, or the
admins') with one Core ``INSERT ... RETURNING`` and returns their messages, built from
the events it wrote and the ids the insert returned; after commit ``hand_off`` gives those messages to the app's publisher, which
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
from sqlalchemy import insert

from .. import wire
from ..domain import events as ev
from ..extensions import db
from ..models import OutboxEvent, utcnow
from . import snapshots

ADMIN_EVENTS = (ev.TopupRequested, ev.TopupProcessed)
_INSERT = insert(OutboxEvent.__table__).returning(OutboxEvent.__table__.c.id, sort_by_parameter_order=True)


def stage(events: list) -> list[dict]:
    """Add this change's events as outbox rows (inside the write transaction); return their messages."""
    groups = []
    by_user = [e for e in events if not isinstance(e, ADMIN_EVENTS)]
    for_admins = [e for e in events if isinstance(e, ADMIN_EVENTS)]
    if by_user:
        seq = next((e.seq for e in by_user if isinstance(e, ev.BalanceChanged)), None)
        groups.append(("user", by_user[0].user_id, seq, _body(by_user)))
    if for_admins:
        groups.append(("admins", None, None, _body(for_admins)))
    if not groups:
        return []
    now = utcnow()
    ids = db.session.connection().execute(_INSERT, [
        {"audience": audience, "user_id": user_id, "seq": seq, "payload": json.dumps(body), "created_at": now,
         "published_at": None}
        for audience, user_id, seq, body in groups
    ]).scalars().all()
    return [{"id": row_id, "audience": audience, "user_id": user_id, "seq": seq, "events": body}
            for row_id, (audience, user_id, seq, body) in zip(ids, groups)]


def _body(events: list) -> list[dict]:
    return [{"event": name, "data": data} for name, data in map(wire.event, events)]


def message(row: OutboxEvent) -> dict:
    """The documented ``balance:updates`` message for an outbox row."""
    return {
        "id": row.id,
        "audience": row.audience,
        "user_id": row.user_id,
        "seq": row.seq,
        "events": json.loads(row.payload),
    }


def hand_off(messages: list[dict], snapshot=None) -> None:
    """After commit: the new balance to the cache and the rows' messages (from ``stage``) to the publisher.

    Both go in one call so that with Redis they share one round trip, the cache write
    first: a client that reads ``GET /balance`` on hearing the event sees the new balance.
    """
    publisher = current_app.extensions.get("balance.publisher")
    if publisher is not None:
        publisher.publish(messages, snapshot)
    elif snapshot is not None:
        snapshots.remember(snapshot)
