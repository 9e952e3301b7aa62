"""Four eyes, through the JSON API and the admin pages: an admin's own top-up request waits for another admin.

An admin may ask for a top-up like any user, and it is listed in the queue like any other; deciding it
themselves, approving or rejecting, is refused (403 ``own_topup`` on the API, a message on the page), moves
no money and leaves it pending; another admin then decides it as usual.
"""
from __future__ import annotations

import html as html_lib
import re

import pytest

from tests.support.api import assert_error

HTML = {"Accept": "text/html,application/xhtml+xml"}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def log_in(client, email: str, password: str = "admin-password-1") -> str:
    """Log in through the form; return the CSRF token the pages' forms then carry."""
    token = TOKEN.search(client.get("/login", headers=HTML).get_data(as_text=True)).group(1)
    client.post("/login", data={"email": email, "password": password, "csrf_token": token}, headers=HTML)
    return TOKEN.search(client.get("/", headers=HTML).get_data(as_text=True)).group(1)


def flashes(client) -> list[str]:
    page = client.get("/admin/topups", headers=HTML).get_data(as_text=True)
    return [html_lib.unescape(m) for m in re.findall(r'class="flash flash-\w+">([^<]*)<', page)]


@pytest.fixture
def asker(client, auth):
    """An admin (``boss@example.com``) with a pending top-up request of $50.00 of their own."""
    admin_id, headers = auth.new_admin("boss@example.com")
    reply = client.post("/transactions/topup", json={"amount": 50, "description": "Mine"}, headers=headers)
    assert reply.status_code == 201, reply.get_json()
    return {"id": admin_id, "headers": headers, "pending": reply.get_json()["id"]}


def state(client, asker) -> tuple:
    """The request's status and the asker's balance."""
    tx = client.get(f"/transactions/{asker['pending']}", headers=asker["headers"]).get_json()
    return tx["status"], client.get("/balance", headers=asker["headers"]).get_json()["balance"]


# ---- the JSON API -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["success", "failed"])
def test_an_admin_deciding_their_own_top_up_gets_403_own_topup_and_it_stays_pending(client, asker, status):
    reply = client.patch(f"/transactions/topup/{asker['pending']}/process", json={"status": status},
                         headers=asker["headers"])

    error = assert_error(reply, 403, "own_topup")
    assert "another admin" in error["message"]
    assert state(client, asker) == ("pending", 0)


def test_an_admin_refused_on_their_own_top_up_cannot_spend_it(client, asker):
    client.patch(f"/transactions/topup/{asker['pending']}/process", json={"status": "success"},
                 headers=asker["headers"])

    reply = client.post("/transactions/payment", json={"amount": 50}, headers=asker["headers"])

    assert_error(reply, 402, "insufficient_balance")
    assert state(client, asker) == ("pending", 0)


def test_an_admins_own_request_is_in_the_pending_list_with_who_asked(client, auth, asker):
    _, other = auth.new_admin("checker@example.com")
    for headers in (asker["headers"], other):
        items = client.get("/transactions/topup/pending", headers=headers).get_json()["items"]
        assert [(t["id"], t["user"]["email"]) for t in items] == [(asker["pending"], "boss@example.com")]


@pytest.mark.parametrize("status, balance", [("success", 50), ("failed", 0)])
def test_another_admin_decides_an_admins_top_up_and_is_recorded_as_the_decider(client, auth, asker, status, balance):
    checker_id, checker = auth.new_admin("checker@example.com")
    client.patch(f"/transactions/topup/{asker['pending']}/process", json={"status": status}, headers=asker["headers"])

    reply = client.patch(f"/transactions/topup/{asker['pending']}/process", json={"status": status},
                         headers=checker)

    assert reply.status_code == 200, reply.get_json()
    assert (reply.get_json()["status"], reply.get_json()["processed_by"]["id"]) == (status, checker_id)
    assert state(client, asker) == (status, balance)


def test_after_another_admin_decided_the_asker_gets_409_already_processed(client, auth, asker):
    _, checker = auth.new_admin("checker@example.com")
    client.patch(f"/transactions/topup/{asker['pending']}/process", json={"status": "success"}, headers=checker)

    reply = client.patch(f"/transactions/topup/{asker['pending']}/process", json={"status": "failed"},
                         headers=asker["headers"])

    assert assert_error(reply, 409, "already_processed")["current_status"] == "success"
    assert state(client, asker) == ("success", 50)


# ---- the admin pages ----------------------------------------------------------------------------------------


def own_row(page: str, tx_id: str) -> str:
    return re.search(rf'<tr class="pending-row" data-tx-id="{tx_id}".*?</tr>', page, re.S).group(0)


def test_the_queue_lists_an_admins_own_request_without_buttons_for_its_owner(client, auth, asker):
    log_in(client, "boss@example.com")
    row = own_row(client.get("/admin/topups", headers=HTML).get_data(as_text=True), asker["pending"])
    assert "boss@example.com" in row and "$50.00" in row
    assert '<div class="decide-buttons" hidden>' in row
    assert row.count(" disabled>") == 3, "the note and both buttons: Enter in the note cannot send the form"
    assert "<p class=\"row-status\" data-row-status>Your own request: another admin must decide it.</p>" in row

    auth.new_admin("checker@example.com", password="admin-password-1")
    other = client.application.test_client()
    log_in(other, "checker@example.com")
    row = own_row(other.get("/admin/topups", headers=HTML).get_data(as_text=True), asker["pending"])
    assert '<div class="decide-buttons">' in row and "Your own request" not in row, "another admin may decide it"


@pytest.mark.parametrize("confirmed, note", [("yes", ""), ("", ""), ("", "n" * 501)],
                         ids=["confirmed", "asking-to-confirm", "with-a-note-too-long-to-confirm"])
@pytest.mark.parametrize("decision, verb", [("approve", "approved"), ("reject", "rejected")])
def test_deciding_your_own_top_up_on_the_page_is_refused_with_a_message_and_moves_nothing(
        client, asker, decision, verb, confirmed, note):
    csrf = log_in(client, "boss@example.com")

    reply = client.post(f"/admin/topups/{asker['pending']}/decide", headers=HTML,
                        data={"decision": decision, "confirmed": confirmed, "note": note, "csrf_token": csrf})

    assert (reply.status_code, reply.headers["Location"]) == (303, "/admin/topups")
    assert flashes(client) == [f"Not {verb}: you asked for this top-up yourself, so another admin must decide it. "
                               f"It is still pending."]
    assert state(client, asker) == ("pending", 0)


@pytest.mark.parametrize("status, decision, verb", [("success", "approve", "approved"),
                                                    ("failed", "reject", "rejected")])
def test_another_admin_decides_an_admins_top_up_on_the_page(app, client, auth, asker, status, decision, verb):
    auth.new_admin("checker@example.com")
    checker = app.test_client()
    csrf = log_in(checker, "checker@example.com")

    checker.post(f"/admin/topups/{asker['pending']}/decide",
                 data={"decision": decision, "confirmed": "yes", "csrf_token": csrf}, headers=HTML)

    assert flashes(checker) == [f"{verb.capitalize()} $50.00 for boss@example.com."]
    assert state(client, asker) == (status, 50 if status == "success" else 0)
