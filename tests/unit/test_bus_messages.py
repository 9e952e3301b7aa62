"""The ``balance:updates`` message format: what another publisher may send, and what is refused."""
from __future__ import annotations

import pytest

from balance.realtime.messages import InvalidMessage, parse

PROCESSED = {"event": "topup_processed", "data": {"transactionId": "t", "userId": 7, "status": "success"}}
UPDATED = {"event": "balance_updated", "data": {"newBalance": 5, "seq": 3}}


def message(**fields) -> dict:
    return {"id": 1, "audience": "user", "user_id": 7, "seq": 3, "events": [UPDATED], **fields}


def test_a_user_message_may_carry_the_admins_events_of_the_same_change():
    parsed = parse(message(admin_events=[PROCESSED]))
    assert parsed.events == (("balance_updated", UPDATED["data"]),)
    assert parsed.admin_events == (("topup_processed", PROCESSED["data"]),)


@pytest.mark.parametrize("admin_events", [None, []])
def test_admin_events_are_optional(admin_events):
    assert parse(message(admin_events=admin_events)).admin_events == ()


@pytest.mark.parametrize("raw, why", [
    (message(admin_events={"event": "topup_processed"}), "admin_events not a list"),
    (message(admin_events=[UPDATED]), "a user's event among the admins' events"),
    (message(admin_events=[{"event": "topup_processed", "data": "x"}]), "an admins' event without a data object"),
    ({"audience": "admins", "events": [PROCESSED], "admin_events": [PROCESSED]}, "admin_events in an admins message"),
    (message(events=[PROCESSED]), "an admins' event among the user's events"),
])
def test_a_message_with_misplaced_admin_events_is_refused(raw, why):
    with pytest.raises(InvalidMessage):
        parse(raw)
