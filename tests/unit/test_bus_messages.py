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


COMPLETED = {"event": "transaction_completed", "data": {"transactionId": "t"}}
FROM_NEWER_CODE = {"event": "loyalty_points_earned", "data": {"points": 3}}


def test_an_event_this_server_does_not_know_is_skipped_and_the_rest_of_the_message_delivered():
    """A rolling deploy: workers on older code deliver what they know of a message from newer code."""
    parsed = parse(message(events=[UPDATED, FROM_NEWER_CODE, COMPLETED],
                           admin_events=[{"event": "topup_digest", "data": {}}, PROCESSED]))
    assert parsed.events == (("balance_updated", UPDATED["data"]), ("transaction_completed", COMPLETED["data"]))
    assert parsed.admin_events == (("topup_processed", PROCESSED["data"]),)
    assert parsed.skipped == ("loyalty_points_earned", "topup_digest")


def test_a_message_of_known_events_skips_nothing():
    assert parse(message()).skipped == ()


def test_a_users_message_of_unknown_events_still_brings_the_admins_theirs():
    parsed = parse(message(seq=None, events=[FROM_NEWER_CODE], admin_events=[PROCESSED]))
    assert parsed.events == () and parsed.admin_events == (("topup_processed", PROCESSED["data"]),)


@pytest.mark.parametrize("raw, why", [
    (message(seq=None, events=[FROM_NEWER_CODE]), "no event this server knows: nothing to deliver"),
    (message(events=[FROM_NEWER_CODE, COMPLETED]), "a seq without its balance_updated (renamed by newer code?): "
                                                   "the socket would take the seq and miss the change"),
    (message(events=[COMPLETED]), "a seq without a balance_updated at all"),
    (message(events=[UPDATED, {"event": "topup_requested", "data": {}}]), "a known admins' event among the user's"),
    (message(events=[UPDATED, {"event": 7, "data": {}}]), "an event name that is not a string"),
    (message(events=[UPDATED, {"event": "loyalty_points_earned"}]), "an unknown event without a data object"),
    (message(events=[UPDATED, "loyalty_points_earned"]), "an event that is not an object"),
    ({"audience": "admins", "events": [FROM_NEWER_CODE]}, "an admins message with no event this server knows"),
])
def test_a_message_is_still_refused_when_skipping_would_hide_a_mistake(raw, why):
    with pytest.raises(InvalidMessage):
        parse(raw)
