"""A caller whose places are all taken: its changes are told to retry, its reads are served, others are untouched."""
from __future__ import annotations

import re

import pytest

from balance.extensions import db
from tests.support import databases
from tests.support.auth import AuthActions

HTML = {"Accept": "text/html"}


@pytest.fixture
def gated(database_uri):
    app = databases.make_app(database_uri, CALLER_WRITE_CONCURRENCY=1, DATABASE_LOCK_TIMEOUT=0.2)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_change_beyond_the_callers_places_is_a_503_to_retry_and_loses_nothing(gated):
    auth = AuthActions(gated.test_client())
    _, admin = auth.new_admin()
    ann_id, ann = auth.new_user()
    _, bob = auth.new_user()
    auth.fund(ann, admin, 100)
    auth.fund(bob, admin, 100)
    gates = gated.extensions["caller_gates"]
    assert gates.enter(ann_id), "a request of ann's is running (say, stuck on her wallet's lock)"
    try:
        refused = auth.client.post("/transactions/payment", json={"amount": 30},
                                   headers={**ann, "Idempotency-Key": "room-1"})
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.get_json()["error"]["code"] == "account_busy"
        assert "still being processed" in refused.get_json()["error"]["message"]
        assert auth.client.get("/balance", headers=ann).get_json()["balance"] == 100, "reads are not held"
        assert auth.client.post("/transactions/payment", json={"amount": 30}, headers=bob).status_code == 201
    finally:
        gates.leave(ann_id)
    paid = auth.client.post("/transactions/payment", json={"amount": 30}, headers={**ann, "Idempotency-Key": "room-1"})
    assert paid.status_code == 201 and "Idempotent-Replayed" not in paid.headers, "the refusal recorded nothing"
    assert auth.client.get("/balance", headers=ann).get_json()["balance"] == 70
    assert gates.in_flight() == 0, "every request left its place"


def logged_in_form_token(client, auth, email: str) -> tuple[int, str]:
    user_id, _ = auth.new_user(email)
    token = re.compile(r'name="csrf_token" value="([^"]+)"')
    login = token.search(client.get("/login", headers=HTML).get_data(as_text=True)).group(1)
    client.post("/login", data={"email": email, "password": "password123", "csrf_token": login}, headers=HTML)
    return user_id, token.search(client.get("/", headers=HTML).get_data(as_text=True)).group(1)


def test_a_booking_posted_while_the_callers_places_are_taken_shows_a_page_saying_to_retry(gated):
    client = gated.test_client()
    auth = AuthActions(client)
    ann_id, form = logged_in_form_token(client, auth, "ann@example.com")
    gates = gated.extensions["caller_gates"]
    assert gates.enter(ann_id)
    try:
        page = client.post("/book", data={"room": "garden-single", "idempotency_key": "k-1", "csrf_token": form},
                           headers=HTML)
    finally:
        gates.leave(ann_id)
    assert page.status_code == 503
    assert page.mimetype == "text/html"
    assert "Busy, try again" in page.get_data(as_text=True) and "still being processed" in page.get_data(as_text=True)
    assert auth.client.get("/transactions", headers=auth.headers_for("ann@example.com")).get_json()["items"] == []
    card = page.get_data(as_text=True).split("error-card", 1)[1]  # (the header has a form too: logging out)
    resend = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', card))
    assert "Send it again" in card and resend == {"room": "garden-single", "idempotency_key": "k-1", "csrf_token": form}
    for _ in range(2):  # sent again, twice: one booking (a failed one here: ann has no money), never two
        client.post(re.search(r'<form method="post" action="([^"]+)"', card).group(1), data=resend, headers=HTML)
    assert len(auth.client.get("/transactions", headers=auth.headers_for("ann@example.com")).get_json()["items"]) == 1


def test_what_locks_no_wallet_is_not_held_by_taken_places(gated):
    """Asking for a top-up, logging out, reading: none waits on a wallet's row, so none waits for a place."""
    client = gated.test_client()
    auth = AuthActions(client)
    ann_id, form = logged_in_form_token(client, auth, "ann@example.com")
    ann = auth.headers_for("ann@example.com")
    gates = gated.extensions["caller_gates"]
    assert gates.enter(ann_id)
    try:
        asked = auth.client.post("/transactions/topup", json={"amount": 5}, headers=ann)
        page = client.post("/topup", data={"amount": "7", "csrf_token": form}, headers=HTML)
        read = auth.client.get("/balance", headers=ann)
        out = client.post("/logout", data={"csrf_token": form}, headers=HTML)
    finally:
        gates.leave(ann_id)
    assert (asked.status_code, page.status_code, read.status_code, out.status_code) == (201, 303, 200, 303)
