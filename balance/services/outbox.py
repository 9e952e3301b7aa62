"""The transactional outbox: a change's events are stored in the change's own transaction.

``stage`` makes one row per change (an ``INSERT ... RETURNING id`` the service runs with
its other writes) and its message, built from the events and the id the insert
returned; after commit ``hand_off`` gives those messages to the app's publisher, which
publishes at once. Rows it could not publish stay unpublished for the relay.

The messages are built before commit on purpose: reading the (expired) rows back
after commit would cost a query per row on the way to the sockets, and would make
the request's session hold a pool connection while the publisher takes a second one
to mark the rows published; with enough concurrent requests every connection of the
pool is held by a request waiting for another, and they all time out together.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import insert, select

from .. import wire
from ..database import delete_batch
from ..domain import events as ev
from ..models import OutboxEvent, utcnow
from . import snapshots

ADMIN_EVENTS = (ev.TopupRequested, ev.TopupProcessed)
_INSERT = insert(OutboxEvent.__table__).returning(OutboxEvent.__table__.c.id)


@dataclass(frozen=True)
class Staged:
    """A change's outbox row, ready to be written: ``step`` for ``database.together``, then ``messages``."""

    step: tuple
    audience: str
    user_id: int | None
    seq: int | None
    payload: dict

    def messages(self, rows: list[tuple]) -> list[dict]:
        """The message to publish after commit, given the rows the insert returned (its id)."""
        return [_message(rows[0][0], self.audience, self.user_id, self.seq, self.payload)]


def stage(events: list) -> Staged:
    """This change's events as its one outbox row (so one message on the bus per change).

    The user's events, with the admins' events of the same change alongside
    (``admin_events``); a change only the admins see is an ``admins`` row.
    """
    by_user = _body([e for e in events if not isinstance(e, ADMIN_EVENTS)])
    for_admins = _body([e for e in events if isinstance(e, ADMIN_EVENTS)])
    if not by_user and not for_admins:
        raise ValueError("a change with no events")
    if by_user:
        user_id = next(e.user_id for e in events if not isinstance(e, ADMIN_EVENTS))
        seq = next((e.seq for e in events if isinstance(e, ev.BalanceChanged)), None)
        audience, payload = "user", {"events": by_user, "admin_events": for_admins}
    else:
        audience, user_id, seq, payload = "admins", None, None, {"events": for_admins, "admin_events": []}
    step = (_INSERT, {"audience": audience, "user_id": user_id, "seq": seq, "payload": json.dumps(payload),
                      "created_at": utcnow(), "published_at": None})
    return Staged(step, audience, user_id, seq, payload)


def _body(events: list) -> list[dict]:
    return [{"event": name, "data": data} for name, data in map(wire.event, events)]


def _message(row_id: int, audience: str, user_id: int | None, seq: int | None, payload: dict) -> dict:
    message = {"id": row_id, "audience": audience, "user_id": user_id, "seq": seq, "events": payload["events"]}
    if payload.get("admin_events"):
        message["admin_events"] = payload["admin_events"]
    return message


def message(row: OutboxEvent) -> dict:
    """The documented ``balance:updates`` message for an outbox row.

    Rows written before a change's admins' events shared its row hold a bare list of
    events; they are still read.
    """
    payload = json.loads(row.payload)
    if isinstance(payload, list):
        payload = {"events": payload}
    return _message(row.id, row.audience, row.user_id, row.seq, payload)


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


PRUNE_BATCH = 1000


def prune_published(older_than: timedelta, batch: int = PRUNE_BATCH) -> int:
    """Delete one batch of rows published more than ``older_than`` ago; return how many went.

    A published row has done its job: the ledger holds the change, and the outbox is only
    read again for rows still unpublished (the relay) or for the last moments before a
    worker lost its subscription (``replay_outbox_since``). Unpublished rows are never
    touched. Oldest publication first, the order of ``ix_outbox_unpublished`` (published_at,
    id), so the index finds them and an empty pass reads nothing (by id, SQLite walked the
    whole table every time); several workers pruning at once delete each row once.
    """
    cutoff = utcnow() - older_than
    oldest = (select(OutboxEvent.id).where(OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < cutoff)
              .order_by(OutboxEvent.published_at, OutboxEvent.id).limit(batch))
    return delete_batch(OutboxEvent, oldest)
