"""The ``balance:updates`` message format: what another publisher may send, and what is refused."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from balance import wire
from balance.domain import events as ev
from balance.realtime.messages import ADMIN_EVENTS, PAYLOADS, USER_EVENTS, InvalidMessage, parse

AT = "2030-01-01T00:00:00.000Z"
PROCESSED = {"event": "topup_processed",
             "data": {"transactionId": "t", "userId": 7, "status": "success", "timestamp": AT}}
UPDATED = {"event": "balance_updated", "data": {"newBalance": 5, "previousBalance": 2.5, "transactionId": "t",
                                                "transactionType": "topup", "amount": 2.5, "timestamp": AT, "seq": 3}}


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


COMPLETED = {"event": "transaction_completed", "data": {"transactionId": "t", "transactionType": "topup", "amount": 2.5,
                                                       "status": "success", "newBalance": 5, "timestamp": AT}}
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


NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
EVERY_EVENT = [
    ev.BalanceChanged(7, "t", "topup", 250, 0, 250, 1, NOW),
    ev.TransactionCompleted(7, "t", "payment", 1999, 1, NOW),
    ev.TransactionFailed(7, "t", "topup", 100, "rejected", NOW),
    ev.BalanceInsufficient(7, "t", 500, 120, NOW),
    ev.TransactionCreated(7, "t", "topup", 100, "pending", None, NOW),
    ev.TopupRequested(7, "user@example.com", "t", 100, "for the trip", NOW),
    ev.TopupProcessed(7, "t", "success", NOW),
]


def test_the_payload_table_covers_every_event_name_this_server_knows():
    assert set(PAYLOADS) == USER_EVENTS | ADMIN_EVENTS


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: type(e).__name__)
def test_every_event_this_server_writes_passes_the_checks_other_publishers_face(event):
    name, data = wire.event(event)
    assert set(PAYLOADS[name]) <= set(data), "the table asks only for fields the server itself sends"
    raw = {"audience": "admins", "events": [{"event": name, "data": data}]} if name in ADMIN_EVENTS else \
        {"audience": "user", "user_id": 7, "seq": data.get("seq"), "events": [{"event": name, "data": data}]}
    assert parse(json.dumps(raw)).events + parse(json.dumps(raw)).admin_events == ((name, data),)


def _with(event: dict, **data) -> dict:
    changed = {**event["data"], **data}
    return {**event, "data": {k: v for k, v in changed.items() if v is not DROP}}


DROP = object()


@pytest.mark.parametrize("raw, why", [
    (message(events=[_with(UPDATED, newBalance=DROP)]), "no newBalance"),
    (message(events=[_with(UPDATED, newBalance="lots")]), "newBalance a string"),
    (message(events=[_with(UPDATED, newBalance=True)]), "newBalance a boolean"),
    (message(events=[_with(UPDATED, newBalance=None)]), "newBalance null"),
    (message(events=[_with(UPDATED, transactionId=42)]), "transactionId a number"),
    (message(events=[_with(UPDATED, timestamp=DROP)]), "no timestamp"),
    (message(events=[UPDATED, _with(COMPLETED, amount=[1])]), "a second event's amount a list"),
    (message(seq=None, events=[{"event": "balance_insufficient", "data": {"transactionId": "t", "timestamp": AT}}]),
     "balance_insufficient without its amounts"),
    (message(admin_events=[_with(PROCESSED, userId="7")]), "an admins' event's userId a string"),
    (message(admin_events=[_with(PROCESSED, userId=7.5)]), "an admins' event's userId not whole"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_known_event_whose_data_lacks_a_field_clients_read_or_has_it_of_the_wrong_type_is_refused(raw, why):
    with pytest.raises(InvalidMessage):
        parse(raw)


@pytest.mark.parametrize(("number", "why"), [
    ("NaN", "NaN is not JSON"), ("Infinity", "Infinity is not JSON"), ("-Infinity", "-Infinity is not JSON"),
    ("1e400", "1e400 is beyond what a JavaScript number holds"),
    ("-1e400", "-1e400 is beyond what a JavaScript number holds"),
    (str(2**53), f"{2**53} is beyond what a JavaScript number holds exactly"),
])
def test_a_message_with_a_number_a_browser_cannot_read_is_refused(number, why):
    raw = json.dumps(message()).replace('"newBalance": 5', f'"newBalance": {number}')
    assert number in raw
    with pytest.raises(InvalidMessage, match=why):
        parse(raw)


@pytest.mark.parametrize("field", ["id", "user_id", "seq"])
def test_an_id_or_seq_past_what_javascript_holds_is_refused_in_any_field(field):
    raw = message(**{field: 10**30})
    if field == "seq":
        raw["events"] = [_with(UPDATED, seq=10**30)]
    with pytest.raises(InvalidMessage, match="beyond what a JavaScript number holds exactly"):
        parse(json.dumps(raw))


def test_the_largest_integer_javascript_holds_exactly_is_fine():
    assert parse(json.dumps(message(events=[_with(UPDATED, newBalance=2**53 - 1)]))).events


def test_fields_beyond_the_ones_clients_read_pass_through_for_newer_code():
    parsed = parse(message(events=[_with(UPDATED, currency="EUR")], admin_events=[_with(PROCESSED, note=None)]))
    assert parsed.events[0][1]["currency"] == "EUR" and parsed.admin_events[0][1]["note"] is None


def test_a_description_may_be_null():
    created = {"transactionId": "t", "transactionType": "topup", "amount": 1, "status": "pending",
               "description": None, "timestamp": AT}
    assert parse(message(seq=None, events=[{"event": "transaction_created", "data": created}])).events


def test_the_readmes_example_message_is_one_the_server_accepts():
    """Other publishers copy it: it must pass the same checks as theirs."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = re.search(r"### The `balance:updates` message.*?```json\n(.*?)```", readme, re.S).group(1)
    parsed = parse(example)
    assert [name for name, _ in parsed.events] == ["balance_updated", "transaction_completed"]
    assert [name for name, _ in parsed.admin_events] == ["topup_processed"]
