"""``Idempotency-Key`` on the two POSTs that move money: a retry gets the first answer and moves nothing."""
from __future__ import annotations

import pytest

from tests.support.api import assert_error


@pytest.fixture
def people(auth):
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    return user, admin


def keyed(headers: dict, key: str) -> dict:
    return {**headers, "Idempotency-Key": key}


def history(client, headers) -> list[dict]:
    return client.get("/transactions", query_string={"limit": 100}, headers=headers).get_json()["items"]


def test_a_retried_payment_gets_the_same_status_and_body_marked_replayed_and_is_charged_once(client, auth, people):
    user, admin = people
    auth.fund(user, admin, 50)
    body = {"amount": 12.5, "description": "Room 101", "reference": "booking-1"}

    first = client.post("/transactions/payment", json=body, headers=keyed(user, "pay-1"))
    again = client.post("/transactions/payment", json=body, headers=keyed(user, "pay-1"))

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == first.get_json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    balance = client.get("/balance", headers=user).get_json()
    assert (balance["balance"], balance["seq"]) == (37.5, 2)
    assert [t["type"] for t in history(client, user)] == ["payment", "topup"]


def test_a_retry_with_the_same_amount_spelled_differently_is_the_same_request(client, auth, people):
    user, admin = people
    auth.fund(user, admin, 50)
    first = client.post("/transactions/payment", data='{"amount": 12.5}', content_type="application/json",
                        headers=keyed(user, "k"))
    again = client.post("/transactions/payment", data='{"amount": 12.50, "description": null}',
                        content_type="application/json", headers=keyed(user, "k"))
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert client.get("/balance", headers=user).get_json()["balance"] == 37.5


def test_a_retried_top_up_request_creates_one_pending_top_up(client, people):
    user, admin = people
    first = client.post("/transactions/topup", json={"amount": 20}, headers=keyed(user, "top-1"))
    again = client.post("/transactions/topup", json={"amount": 20}, headers=keyed(user, "top-1"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [t["id"] for t in client.get("/transactions/topup/pending", headers=admin).get_json()["items"]] == [
        first.get_json()["id"]]


@pytest.mark.parametrize("decision", ["success", "failed"])
def test_a_top_up_retried_after_an_admin_decided_it_still_gets_the_first_answer(client, people, decision):
    user, admin = people
    first = client.post("/transactions/topup", json={"amount": 20}, headers=keyed(user, "top-2"))
    client.patch(f"/transactions/topup/{first.get_json()['id']}/process", json={"status": decision}, headers=admin)

    again = client.post("/transactions/topup", json={"amount": 20}, headers=keyed(user, "top-2"))

    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.get_json()["status"] == "pending"
    assert client.get("/balance", headers=user).get_json()["balance"] == (20 if decision == "success" else 0)


def test_a_payment_refused_for_insufficient_balance_is_replayed_as_the_same_402(client, auth, people):
    user, admin = people
    first = client.post("/transactions/payment", json={"amount": 30}, headers=keyed(user, "short"))
    assert_error(first, 402, "insufficient_balance")
    auth.fund(user, admin, 100)  # even now that it would fit

    again = client.post("/transactions/payment", json={"amount": 30}, headers=keyed(user, "short"))

    assert again.status_code == 402
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.get("/balance", headers=user).get_json()["balance"] == 100
    assert [t["status"] for t in history(client, user) if t["type"] == "payment"] == ["failed"]


@pytest.mark.parametrize(
    ("first_path", "first_body", "second_path", "second_body"),
    [
        ("/transactions/payment", {"amount": 10}, "/transactions/payment", {"amount": 11}),
        ("/transactions/payment", {"amount": 10}, "/transactions/payment", {"amount": 10, "description": "x"}),
        ("/transactions/payment", {"amount": 10}, "/transactions/payment", {"amount": 10, "reference": "r"}),
        ("/transactions/topup", {"amount": 10}, "/transactions/topup", {"amount": 10.01}),
        ("/transactions/topup", {"amount": 10}, "/transactions/payment", {"amount": 10}),
        ("/transactions/payment", {"amount": 10}, "/transactions/topup", {"amount": 10}),
    ],
    ids=["other amount", "added description", "added reference", "other top-up amount", "top-up then payment",
         "payment then top-up"],
)
def test_the_same_key_with_a_different_request_is_a_422_and_moves_nothing(client, auth, people, first_path,
                                                                          first_body, second_path, second_body):
    user, admin = people
    auth.fund(user, admin, 100)
    assert client.post(first_path, json=first_body, headers=keyed(user, "same")).status_code == 201
    before_balance = client.get("/balance", headers=user).get_json()
    before_history = history(client, user)

    reply = client.post(second_path, json=second_body, headers=keyed(user, "same"))

    assert_error(reply, 422, "idempotency_key_reused")
    assert client.get("/balance", headers=user).get_json() == before_balance
    assert history(client, user) == before_history


def test_keys_belong_to_one_user_so_two_users_may_use_the_same_one(client, auth, people):
    user, admin = people
    _, other = auth.new_user()
    auth.fund(user, admin, 10)
    auth.fund(other, admin, 10)
    mine = client.post("/transactions/payment", json={"amount": 1}, headers=keyed(user, "shared"))
    theirs = client.post("/transactions/payment", json={"amount": 1}, headers=keyed(other, "shared"))
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.get_json()["id"] != theirs.get_json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers
    assert client.get("/balance", headers=other).get_json()["balance"] == 9


def test_without_a_key_two_identical_payments_are_two_payments(client, auth, people):
    user, admin = people
    auth.fund(user, admin, 10)
    first = client.post("/transactions/payment", json={"amount": 1}, headers=user)
    second = client.post("/transactions/payment", json={"amount": 1}, headers=user)
    assert first.get_json()["id"] != second.get_json()["id"]
    assert client.get("/balance", headers=user).get_json()["balance"] == 8


def test_a_key_is_trimmed_so_a_stray_space_is_the_same_key(client, auth, people):
    user, admin = people
    auth.fund(user, admin, 10)
    first = client.post("/transactions/payment", json={"amount": 1}, headers=keyed(user, "k-1"))
    again = client.post("/transactions/payment", json={"amount": 1}, headers=keyed(user, " k-1 "))
    assert again.get_json() == first.get_json()
    assert client.get("/balance", headers=user).get_json()["balance"] == 9
