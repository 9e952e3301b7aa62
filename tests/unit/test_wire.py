"""The JSON shapes clients read: the seed's socket payloads, transactions, users, timestamps."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from balance import wire
from balance.domain import events as ev

AT = datetime(2026, 11, 28, 3, 30, 53, 76_753, tzinfo=timezone.utc)
STAMP = "2026-11-28T03:30:53.076Z"


def test_timestamps_are_utc_iso_8601_with_milliseconds_like_javascript():
    assert wire.timestamp(AT) == STAMP
    assert wire.timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2026-01-02T03:04:05.000Z"
    assert wire.timestamp(datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=timezone.utc)) == "2026-01-02T03:04:05.999Z"
    assert wire.timestamp(None) is None


def test_a_timestamp_in_another_zone_is_written_in_utc():
    plus_two = timezone(timedelta(hours=2))
    assert wire.timestamp(datetime(2026, 11, 28, 5, 30, 53, 76_753, tzinfo=plus_two)) == STAMP


@pytest.mark.parametrize(
    ("event", "name", "payload"),
    [
        (
            ev.BalanceChanged(7, "tx-1", "topup", 5000, 1250, 6250, 3, AT),
            "balance_updated",
            {"newBalance": 62.5, "previousBalance": 12.5, "transactionId": "tx-1", "transactionType": "topup",
             "amount": 50, "timestamp": STAMP, "seq": 3},
        ),
        (
            ev.TransactionCompleted(7, "tx-2", "payment", 1250, 5000, AT),
            "transaction_completed",
            {"transactionId": "tx-2", "transactionType": "payment", "amount": 12.5, "status": "success",
             "newBalance": 50, "timestamp": STAMP},
        ),
        (
            ev.TransactionFailed(7, "tx-3", "payment", 4000, "insufficient_balance", AT),
            "transaction_failed",
            {"transactionId": "tx-3", "transactionType": "payment", "amount": 40, "reason": "insufficient_balance",
             "timestamp": STAMP},
        ),
        (
            ev.BalanceInsufficient(7, "tx-3", 4000, 3750, AT),
            "balance_insufficient",
            {"transactionId": "tx-3", "requiredAmount": 40, "currentBalance": 37.5, "shortfall": 2.5,
             "timestamp": STAMP},
        ),
        (
            ev.TopupRequested(7, "u@example.com", "tx-4", 1, "Test topup", AT),
            "topup_requested",
            {"transactionId": "tx-4", "userId": 7, "userEmail": "u@example.com", "amount": 0.01,
             "description": "Test topup", "timestamp": STAMP},
        ),
        (
            ev.TopupProcessed(7, "tx-4", "failed", AT),
            "topup_processed",
            {"transactionId": "tx-4", "userId": 7, "status": "failed", "timestamp": STAMP},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_domain_event_becomes_the_seed_socket_event_with_exactly_its_fields(event, name, payload):
    assert wire.event(event) == (name, payload)
    assert json.loads(json.dumps(wire.event(event)[1])) == payload


def test_a_balance_update_payload_carries_the_change_counter_as_an_integer():
    _, payload = wire.event(ev.BalanceChanged(1, "t", "payment", 1, 100, 99, 41, AT))
    assert payload["seq"] == 41 and isinstance(payload["seq"], int)
    assert json.dumps(payload["newBalance"]) == "0.99"


def test_something_that_is_not_an_event_is_refused():
    with pytest.raises(TypeError):
        wire.event({"newBalance": 1})


@dataclass
class FakeUser:
    id: int = 3
    email: str = "a@example.com"
    name: str | None = "A"
    role: str = "user"
    password_hash: str = "secret-hash"


@dataclass
class FakeTransaction:
    id: str = "tx-9"
    type: str = "payment"
    status: str = "success"
    amount: int = 1999
    description: str | None = "Room 101"
    reference: str | None = "booking-17"
    balance_snapshot: int | None = 3001
    created_at: datetime = AT
    processed_at: datetime | None = AT
    admin_notes: str | None = None
    failure_reason: str | None = None


def test_a_user_on_the_wire_is_id_email_name_and_role_and_never_the_password_hash():
    assert wire.user(FakeUser()) == {"id": 3, "email": "a@example.com", "name": "A", "role": "user"}


def test_a_transaction_on_the_wire_has_the_issue_fields_in_currency_units():
    assert wire.transaction(FakeTransaction()) == {
        "id": "tx-9", "type": "payment", "status": "success", "amount": 19.99, "description": "Room 101",
        "reference": "booking-17", "balance_snapshot": 30.01, "created_at": STAMP, "processed_at": STAMP,
        "admin_notes": None, "failure_reason": None,
    }


def test_a_pending_transaction_has_null_snapshot_and_processed_time():
    body = wire.transaction(FakeTransaction(status="pending", balance_snapshot=None, processed_at=None))
    assert (body["balance_snapshot"], body["processed_at"]) == (None, None)


def test_the_insufficient_balance_details_give_required_current_and_shortfall():
    assert wire.insufficient_details(4000, 3750) == {"required_amount": 40, "current_balance": 37.5, "shortfall": 2.5}
