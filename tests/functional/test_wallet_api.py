"""``/balance`` and ``/transactions``: the seed's wallet API, through the Flask test client."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select, update

from balance.extensions import db
from balance.models import Transaction
from tests.support import databases
from tests.support.api import assert_error

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TRANSACTION_FIELDS = {"id", "type", "status", "amount", "description", "reference", "balance_snapshot", "created_at",
                      "processed_at", "admin_notes", "failure_reason"}


def when(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


@pytest.fixture
def people(auth):
    """A user and an admin, as (user headers, admin headers, user id)."""
    user_id, user = auth.new_user()
    _, admin = auth.new_admin()
    return user, admin, user_id


# --- balance ------------------------------------------------------------------------------------------------------

def test_a_new_wallet_shows_zero_in_the_configured_currency_at_seq_zero(client, people):
    user, _, _ = people
    body = client.get("/balance", headers=user).get_json()
    assert set(body) == {"balance", "currency", "seq", "updated_at"}
    assert (body["balance"], body["currency"], body["seq"]) == (0, "USD", 0)
    assert STAMP.match(body["updated_at"])


def test_the_balance_follows_each_change_and_seq_counts_them(client, auth, people):
    user, admin, _ = people
    auth.fund(user, admin, 20)
    client.post("/transactions/payment", json={"amount": 0.01}, headers=user)
    client.post("/transactions/payment", json={"amount": 100}, headers=user)  # refused: not a change
    body = client.get("/balance", headers=user).get_json()
    assert (body["balance"], body["seq"]) == (19.99, 2)


# --- top-ups ------------------------------------------------------------------------------------------------------

def test_requesting_a_top_up_answers_201_with_a_pending_transaction(client, people):
    user, _, _ = people
    reply = client.post("/transactions/topup", json={"amount": 50, "description": "Test topup"}, headers=user)
    assert reply.status_code == 201
    tx = reply.get_json()
    assert set(tx) == TRANSACTION_FIELDS
    assert (tx["type"], tx["status"], tx["amount"], tx["description"]) == ("topup", "pending", 50, "Test topup")
    assert (tx["balance_snapshot"], tx["processed_at"], tx["admin_notes"], tx["failure_reason"]) == (None,) * 4
    assert STAMP.match(tx["created_at"])
    assert abs(when(tx["created_at"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert client.get("/balance", headers=user).get_json()["balance"] == 0


def test_the_pending_queue_costs_the_same_statements_however_many_people_asked(app, client, auth):
    """Who asked is loaded with the queue, not one query per requester (3,081 statements for 3,500 top-ups)."""
    _, admin = auth.new_admin()

    def statements_for_the_queue(people: int) -> int:
        for _ in range(people):
            _, user = auth.new_user()
            assert client.post("/transactions/topup", json={"amount": 5}, headers=user).status_code == 201
        seen = []

        def count(*_):
            seen.append(1)

        with app.app_context():
            event.listen(db.engine, "before_cursor_execute", count)
            try:
                assert client.get("/transactions/topup/pending", headers=admin).status_code == 200
            finally:
                event.remove(db.engine, "before_cursor_execute", count)
        return len(seen)

    assert statements_for_the_queue(2) == statements_for_the_queue(6)


def test_admins_see_every_pending_top_up_oldest_first_with_who_asked(client, auth, people):
    user, admin, user_id = people
    other_id, other = auth.new_user()
    first = client.post("/transactions/topup", json={"amount": 1}, headers=user).get_json()
    second = client.post("/transactions/topup", json={"amount": 2}, headers=other).get_json()
    decided = client.post("/transactions/topup", json={"amount": 3}, headers=user).get_json()
    client.patch(f"/transactions/topup/{decided['id']}/process", json={"status": "failed"}, headers=admin)

    reply = client.get("/transactions/topup/pending", headers=admin)

    assert reply.status_code == 200
    items = reply.get_json()["items"]
    assert [i["id"] for i in items] == [first["id"], second["id"]]
    assert [i["user"]["id"] for i in items] == [user_id, other_id]
    assert set(items[0]["user"]) == {"id", "email", "name", "role"}
    assert all(i["status"] == "pending" for i in items)


def test_approving_a_top_up_answers_the_credited_transaction_and_who_processed_it(client, people):
    user, admin, _ = people
    pending = client.post("/transactions/topup", json={"amount": 12.5}, headers=user).get_json()

    reply = client.patch(f"/transactions/topup/{pending['id']}/process",
                         json={"status": "success", "admin_notes": "Approved for testing"}, headers=admin)

    assert reply.status_code == 200
    tx = reply.get_json()
    assert (tx["id"], tx["status"], tx["balance_snapshot"], tx["admin_notes"]) == (pending["id"], "success", 12.5,
                                                                                  "Approved for testing")
    assert STAMP.match(tx["processed_at"]) and tx["failure_reason"] is None
    assert tx["processed_by"]["role"] == "admin"
    assert client.get("/balance", headers=user).get_json()["balance"] == 12.5
    assert client.get("/transactions/topup/pending", headers=admin).get_json()["items"] == []


def test_rejecting_a_top_up_answers_it_failed_and_credits_nothing(client, people):
    user, admin, _ = people
    pending = client.post("/transactions/topup", json={"amount": 50}, headers=user).get_json()
    reply = client.patch(f"/transactions/topup/{pending['id']}/process",
                         json={"status": "failed", "admin_notes": "no receipt"}, headers=admin)
    assert reply.status_code == 200
    tx = reply.get_json()
    assert (tx["status"], tx["failure_reason"], tx["admin_notes"], tx["balance_snapshot"]) == (
        "failed", "rejected", "no receipt", None)
    assert client.get("/balance", headers=user).get_json()["balance"] == 0


@pytest.mark.parametrize(("first", "second"), [("success", "success"), ("success", "failed"), ("failed", "success"),
                                               ("failed", "failed")])
def test_a_second_decision_is_a_409_that_says_what_happened_and_changes_nothing(client, auth, people, first, second):
    user, admin, _ = people
    _, other_admin = auth.new_admin()
    pending = client.post("/transactions/topup", json={"amount": 50}, headers=user).get_json()
    client.patch(f"/transactions/topup/{pending['id']}/process", json={"status": first}, headers=admin)

    reply = client.patch(f"/transactions/topup/{pending['id']}/process", json={"status": second},
                         headers=other_admin)

    error = assert_error(reply, 409, "already_processed")
    assert error["current_status"] == first
    assert client.get("/balance", headers=user).get_json()["balance"] == (50 if first == "success" else 0)
    assert client.get(f"/transactions/{pending['id']}", headers=user).get_json()["status"] == first


@pytest.mark.parametrize("transaction_id", ["no-such-id", "00000000-0000-4000-8000-000000000000", "a%00b", "x" * 300])
def test_processing_an_unknown_top_up_is_a_404(client, people, transaction_id):
    _, admin, _ = people
    reply = client.patch(f"/transactions/topup/{transaction_id}/process", json={"status": "success"}, headers=admin)
    assert_error(reply, 404, "not_found")


def test_processing_a_payment_as_if_it_were_a_top_up_is_a_404_and_moves_nothing(client, auth, people):
    user, admin, _ = people
    auth.fund(user, admin, 10)
    payment = client.post("/transactions/payment", json={"amount": 4}, headers=user).get_json()
    reply = client.patch(f"/transactions/topup/{payment['id']}/process", json={"status": "success"}, headers=admin)
    assert_error(reply, 404, "not_found")
    assert client.get("/balance", headers=user).get_json()["balance"] == 6


# --- payments -----------------------------------------------------------------------------------------------------

def test_a_payment_the_balance_covers_answers_201_success_with_the_new_balance(client, auth, people):
    user, admin, _ = people
    auth.fund(user, admin, 50)
    reply = client.post("/transactions/payment",
                        json={"amount": 19.99, "description": "Room 101", "reference": "booking-17"}, headers=user)
    assert reply.status_code == 201
    tx = reply.get_json()
    assert set(tx) == TRANSACTION_FIELDS
    assert (tx["type"], tx["status"], tx["amount"], tx["balance_snapshot"]) == ("payment", "success", 19.99, 30.01)
    assert (tx["description"], tx["reference"], tx["failure_reason"]) == ("Room 101", "booking-17", None)
    assert STAMP.match(tx["processed_at"])


def test_a_payment_of_exactly_the_balance_leaves_zero(client, auth, people):
    user, admin, _ = people
    auth.fund(user, admin, 0.3)
    assert client.post("/transactions/payment", json={"amount": 0.3}, headers=user).get_json()["balance_snapshot"] == 0
    assert client.get("/balance", headers=user).get_json()["balance"] == 0


def test_a_payment_the_balance_cannot_cover_is_a_402_with_the_shortfall_and_is_recorded_failed(client, auth, people):
    user, admin, _ = people
    auth.fund(user, admin, 37.5)

    reply = client.post("/transactions/payment", json={"amount": 40, "description": "Suite"}, headers=user)

    error = assert_error(reply, 402, "insufficient_balance")
    assert (error["required_amount"], error["current_balance"], error["shortfall"]) == (40, 37.5, 2.5)
    failed = error["transaction"]
    assert (failed["type"], failed["status"], failed["failure_reason"], failed["amount"]) == (
        "payment", "failed", "insufficient_balance", 40)
    assert failed["balance_snapshot"] is None
    assert client.get(f"/transactions/{failed['id']}", headers=user).get_json() == failed
    assert client.get("/transactions", headers=user).get_json()["items"][0] == failed
    balance = client.get("/balance", headers=user).get_json()
    assert (balance["balance"], balance["seq"]) == (37.5, 1)


def test_an_empty_wallet_paying_a_cent_falls_short_by_a_cent(client, people):
    user, _, _ = people
    error = assert_error(client.post("/transactions/payment", json={"amount": 0.01}, headers=user), 402,
                         "insufficient_balance")
    assert (error["required_amount"], error["current_balance"], error["shortfall"]) == (0.01, 0, 0.01)


def test_amounts_go_in_and_come_out_exactly(client, auth, people):
    user, admin, _ = people
    auth.fund(user, admin, 0.3)
    for _ in range(3):
        client.post("/transactions/payment", json={"amount": 0.1}, headers=user)
    assert client.get("/balance", headers=user).get_json()["balance"] == 0
    auth.fund(user, admin, 1000000)
    auth.fund(user, admin, 999999.99)
    assert client.get("/balance", headers=user).get_json()["balance"] == 1999999.99


# --- reading transactions -----------------------------------------------------------------------------------------

def make_history(client, auth, user, admin, count: int) -> list[str]:
    """``count`` transactions, oldest first: alternately a top-up approved and a payment."""
    ids = []
    for i in range(count):
        if i % 2 == 0:
            ids.append(auth.fund(user, admin, 10)["id"])
        else:
            ids.append(client.post("/transactions/payment", json={"amount": 1}, headers=user).get_json()["id"])
    return ids


def test_the_transaction_list_is_the_callers_own_newest_first(client, auth, people):
    user, admin, _ = people
    _, other = auth.new_user()
    client.post("/transactions/topup", json={"amount": 5}, headers=other)
    ids = make_history(client, auth, user, admin, 5)

    body = client.get("/transactions", headers=user).get_json()

    assert [t["id"] for t in body["items"]] == ids[::-1]
    assert body["next_cursor"] is None
    assert all(set(t) == TRANSACTION_FIELDS for t in body["items"])


def test_paging_by_cursor_walks_every_transaction_once_newest_first(client, auth, people):
    user, admin, _ = people
    ids = make_history(client, auth, user, admin, 7)
    seen, cursor, pages = [], None, 0
    while True:
        reply = client.get("/transactions", query_string={"limit": 3, **({"cursor": cursor} if cursor else {})},
                           headers=user)
        assert reply.status_code == 200
        body = reply.get_json()
        assert len(body["items"]) <= 3
        seen += [t["id"] for t in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert pages == 3


def test_transactions_made_in_the_same_instant_are_paged_by_id_each_once(app, client, auth, people):
    user, admin, _ = people
    make_history(client, auth, user, admin, 5)
    with app.app_context():  # one instant for all of them: the cursor's id alone orders them
        db.session.execute(update(Transaction).values(created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)))
        db.session.commit()
        ids = sorted((t.id for t in db.session.execute(select(Transaction)).scalars()), reverse=True)
    seen, cursor = [], None
    while True:
        body = client.get("/transactions", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})},
                          headers=user).get_json()
        seen += [t["id"] for t in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


def test_a_page_exactly_full_at_the_end_has_no_next_cursor(client, auth, people):
    user, admin, _ = people
    make_history(client, auth, user, admin, 4)
    first = client.get("/transactions?limit=2", headers=user).get_json()
    second = client.get(f"/transactions?limit=2&cursor={first['next_cursor']}", headers=user).get_json()
    assert len(second["items"]) == 2 and second["next_cursor"] is None


def test_a_transaction_arriving_between_pages_neither_repeats_nor_shifts_the_next_page(client, auth, people):
    user, admin, _ = people
    ids = make_history(client, auth, user, admin, 4)
    first = client.get("/transactions?limit=2", headers=user).get_json()
    client.post("/transactions/topup", json={"amount": 1}, headers=user)
    second = client.get(f"/transactions?limit=2&cursor={first['next_cursor']}", headers=user).get_json()
    assert [t["id"] for t in first["items"] + second["items"]] == ids[::-1]


@pytest.mark.parametrize(("limit", "count"), [("1", 1), ("100", 5), ("", 5)])
def test_the_limit_is_a_whole_number_from_1_to_100_and_defaults_to_20(client, auth, people, limit, count):
    user, admin, _ = people
    make_history(client, auth, user, admin, 5)
    assert len(client.get(f"/transactions?limit={limit}", headers=user).get_json()["items"]) == count


def test_one_transaction_can_be_read_by_its_owner(client, people):
    user, _, _ = people
    tx = client.post("/transactions/topup", json={"amount": 5}, headers=user).get_json()
    reply = client.get(f"/transactions/{tx['id']}", headers=user)
    assert reply.status_code == 200 and reply.get_json() == tx


def test_a_user_never_sees_another_users_transactions(client, auth, people):
    user, admin, _ = people
    _, other = auth.new_user()
    mine = auth.fund(user, admin, 5)
    paid = client.post("/transactions/payment", json={"amount": 1}, headers=user).get_json()

    for tx_id in (mine["id"], paid["id"]):
        assert_error(client.get(f"/transactions/{tx_id}", headers=other), 404, "not_found")
        assert_error(client.get(f"/transactions/{tx_id}", headers=admin), 404, "not_found")
    assert client.get("/transactions", headers=other).get_json() == {"items": [], "next_cursor": None}
    assert client.get("/balance", headers=other).get_json()["balance"] == 0


@pytest.mark.parametrize("transaction_id", ["missing", "00000000-0000-4000-8000-000000000000", "a%00b", "é"])
def test_reading_an_unknown_transaction_is_a_404(client, people, transaction_id):
    user, _, _ = people
    assert_error(client.get(f"/transactions/{transaction_id}", headers=user), 404, "not_found")


# --- time on the wire ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("database_uri", ["postgresql"], indirect=True)
def test_times_are_utc_on_the_wire_even_when_the_database_session_is_in_another_zone(database_uri):
    app = databases.make_app(database_uri, SQLALCHEMY_ENGINE_OPTIONS={
        "connect_args": {"options": "-c timezone=Asia/Tokyo"}})
    try:
        from tests.support.auth import AuthActions

        client = app.test_client()
        auth = AuthActions(client)
        _, user = auth.new_user()
        _, admin = auth.new_admin()
        before = datetime.now(timezone.utc)
        tx = auth.fund(user, admin, 5)
        for stamp in (tx["created_at"], tx["processed_at"], client.get("/balance", headers=user).get_json()[
                "updated_at"]):
            assert abs(when(stamp) - before) < timedelta(minutes=1), stamp
    finally:
        with app.app_context():
            from balance.extensions import db

            db.session.remove()
            db.engine.dispose()
