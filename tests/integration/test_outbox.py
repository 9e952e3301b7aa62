"""The outbox: each committed change is one row, so one message on ``balance:updates`` (SQLite and PostgreSQL)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from balance.extensions import db
from balance.models import OutboxEvent, utcnow
from balance.realtime.messages import parse
from balance.services import outbox
from tests.support.wallets import approve, assert_books_clean, fund, new_admin, new_user, pay, request_topup


@pytest.fixture
def sent(ctx):
    """What the services hand to the bus after commit (still delivered: the bus is wrapped, not replaced)."""
    bus = ctx.extensions["balance.publisher"].bus
    seen, send = [], bus.send

    def recording(messages, snapshot=None):
        seen.extend(messages)
        return send(messages, snapshot)

    bus.send = recording
    yield seen
    bus.send = send


def rows() -> list[OutboxEvent]:
    db.session.rollback()
    return db.session.execute(select(OutboxEvent).order_by(OutboxEvent.id)).scalars().all()


def names(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


def test_an_approval_is_one_message_for_the_user_with_the_admins_events_alongside(sent):
    user, admin = new_user(), new_admin()
    tx_id = request_topup(user, 5000)
    sent.clear()

    approve(tx_id, admin)

    [message] = sent
    assert (message["audience"], message["user_id"], message["seq"]) == ("user", user, 1)
    assert names(message["events"]) == ["balance_updated", "transaction_completed"]
    assert names(message["admin_events"]) == ["topup_processed"]
    assert message["admin_events"][0]["data"]["transactionId"] == tx_id
    row = rows()[-1]
    assert outbox.message(row) == message, "the relay republishes exactly what was published"
    parsed = parse(json.dumps(message))
    assert [name for name, _ in parsed.admin_events] == ["topup_processed"]


def test_a_top_up_request_is_one_message_for_the_users_other_tabs_and_the_admins(sent):
    user = new_user()

    tx_id = request_topup(user, 700)

    [message] = sent
    assert (message["audience"], message["user_id"], message["seq"]) == ("user", user, None), "no balance moved"
    assert names(message["events"]) == ["transaction_created"]
    assert names(message["admin_events"]) == ["topup_requested"]
    created = message["events"][0]["data"]
    assert (created["transactionId"], created["transactionType"], created["status"], created["amount"]) == (
        tx_id, "topup", "pending", 7.0)
    assert message["admin_events"][0]["data"]["transactionId"] == tx_id
    assert [r.audience for r in rows()] == ["user"]


def test_a_refused_payment_is_one_message_without_a_seq(sent):
    user, admin = new_user(), new_admin()
    fund(user, admin, 100)
    sent.clear()

    pay(user, 500)

    [message] = sent
    assert (message["audience"], message["seq"]) == ("user", None)
    assert names(message["events"]) == ["transaction_failed", "balance_insufficient"]
    assert len(rows()) == 3, "request, approval, refusal: one row each"


def test_a_row_written_as_a_bare_list_of_events_is_still_read_by_the_relay(ctx):
    user = new_user()
    events = [{"event": "transaction_failed", "data": FAILED}]
    db.session.add(OutboxEvent(audience="user", user_id=user, seq=None, payload=json.dumps(events),
                               created_at=utcnow()))
    db.session.commit()

    message = outbox.message(rows()[-1])

    assert message["events"] == events and "admin_events" not in message
    assert parse(message).events == (("transaction_failed", events[0]["data"]),)


FAILED = {"transactionId": "t", "transactionType": "topup", "amount": 1, "reason": "x",
          "timestamp": "2030-01-01T00:00:00.000Z"}
REQUESTED = {"transactionId": "t", "userId": 1, "userEmail": "a@example.com", "amount": 1, "description": None,
             "timestamp": "2030-01-01T00:00:00.000Z"}


class RecordingGateway:
    def __init__(self):
        self.stats = {"invalid": 0, "unknown_events_skipped": 0}
        self.delivered = []

    def deliver(self, message):
        self.delivered.append(message)


def test_the_outbox_replay_passes_over_a_row_from_newer_code_and_delivers_the_rest(ctx):
    """A worker catching up after a lost subscription must not stop at a row it cannot read (and retry it forever)."""
    from datetime import timedelta

    from balance.realtime.bus import replay_outbox_since

    user = new_user()
    since = utcnow() - timedelta(seconds=1)
    unknown = {"events": [{"event": "loyalty_points_earned", "data": {"points": 3}}], "admin_events": []}
    mixed = {"events": [{"event": "loyalty_points_earned", "data": {}},
                        {"event": "transaction_failed", "data": FAILED}],
             "admin_events": [{"event": "topup_requested", "data": REQUESTED}]}
    for payload in (unknown, mixed):
        db.session.add(OutboxEvent(audience="user", user_id=user, seq=None, payload=json.dumps(payload),
                                   created_at=utcnow()))
    db.session.commit()
    request_topup(user, 500)  # a change of this code, after them

    gateway = RecordingGateway()
    assert replay_outbox_since(gateway, since) == 3
    assert [m.events for m in gateway.delivered][0] == (("transaction_failed", FAILED),)
    assert [name for name, _ in gateway.delivered[1].events] == ["transaction_created"]
    assert gateway.stats == {"invalid": 1, "unknown_events_skipped": 1}


def test_published_rows_past_the_retention_are_pruned_a_batch_at_a_time_and_unpublished_ones_never(ctx):
    admin, user = new_admin(), new_user()
    for _ in range(4):
        fund(user, admin, 10)  # two rows each (the request, the approval), published at once
    ids = [r.id for r in rows()]
    assert len(ids) == 8 and all(r.published_at is not None for r in rows())
    two_days_ago = utcnow() - timedelta(days=2)
    db.session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids[:5])).values(published_at=two_days_ago))
    db.session.execute(update(OutboxEvent).where(OutboxEvent.id == ids[5])  # old, and never published
                       .values(published_at=None, created_at=two_days_ago))
    db.session.commit()

    assert [outbox.prune_published(timedelta(hours=24), batch=2) for _ in range(4)] == [2, 2, 1, 0]
    assert [r.id for r in rows()] == ids[5:], "the unpublished row and the recent ones stay"
    assert_books_clean()  # the ledger does not lean on the outbox
