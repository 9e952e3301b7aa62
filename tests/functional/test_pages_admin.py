"""The admin pages: who may see them, deciding a top-up once (with a confirmation), and the lists and error pages."""
from __future__ import annotations

import html as html_lib
import re

import pytest
from sqlalchemy import event

from balance.extensions import db

HTML = {"Accept": "text/html,application/xhtml+xml"}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
ADMIN_PAGES = ["/admin/topups", "/admin/topups/processed", "/admin/users", "/admin/users/balances", "/admin/users/1"]


def log_in(client, email: str, password: str) -> str:
    """Log in through the form; return the CSRF token the pages' forms then carry."""
    token = TOKEN.search(client.get("/login", headers=HTML).get_data(as_text=True)).group(1)
    client.post("/login", data={"email": email, "password": password, "csrf_token": token}, headers=HTML)
    return TOKEN.search(client.get("/", headers=HTML).get_data(as_text=True)).group(1)


def flashes(client, path: str = "/admin/topups") -> list[str]:
    page = client.get(path, headers=HTML).get_data(as_text=True)
    return [html_lib.unescape(m) for m in re.findall(r'class="flash flash-\w+">([^<]*)<', page)]


@pytest.fixture
def world(app, client, auth):
    """An admin logged in on ``client``, a user with a pending top-up of $50.00, and a second admin's client."""
    admin_id, admin_headers = auth.new_admin("first@example.com")
    user_id, user_headers = auth.new_user("ann@example.com")
    pending = client.post("/transactions/topup", json={"amount": 50, "description": "Trip <b>fund</b>"},
                          headers=user_headers).get_json()["id"]
    csrf = log_in(client, "first@example.com", "admin-password-1")
    return {"admin_id": admin_id, "admin": admin_headers, "user_id": user_id, "user": user_headers,
            "pending": pending, "csrf": csrf}


def balance(client, headers):
    return client.get("/balance", headers=headers).get_json()["balance"]


def decide(client, world, decision="approve", confirmed="yes", **extra):
    data = {"decision": decision, "confirmed": confirmed, "csrf_token": world["csrf"], **extra}
    return client.post(f"/admin/topups/{world['pending']}/decide", data=data, headers=HTML)


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_a_user_gets_the_403_page_on_every_admin_page(client, auth, path):
    auth.new_user("ann@example.com")
    log_in(client, "ann@example.com", "password123")
    reply = client.get(path, headers=HTML)
    page = reply.get_data(as_text=True)
    assert reply.status_code == 403
    assert "Not allowed" in page and "This page is for admins only." in page
    assert 'href="/static/css/app.css"' in page and "ann@example.com" in page


def test_a_user_cannot_decide_a_top_up(client, auth, world):
    user_client = client.application.test_client()
    csrf = log_in(user_client, "ann@example.com", "password123")
    reply = user_client.post(f"/admin/topups/{world['pending']}/decide",
                             data={"decision": "approve", "confirmed": "yes", "csrf_token": csrf}, headers=HTML)
    assert reply.status_code == 403
    assert balance(client, world["user"]) == 0


def test_the_queue_lists_pending_top_ups_with_who_asked_escaped(client, world):
    page = client.get("/admin/topups", headers=HTML).get_data(as_text=True)
    assert f'data-tx-id="{world["pending"]}"' in page and "ann@example.com" in page and "$50.00" in page
    assert "Trip &lt;b&gt;fund&lt;/b&gt;" in page and "<b>fund" not in page
    assert '<span class="count" id="pending-count">1</span>' in page


def test_a_decision_without_confirmation_shows_a_confirmation_page_and_moves_nothing(client, world):
    reply = decide(client, world, confirmed="", note="Looks fine")
    page = reply.get_data(as_text=True)
    assert reply.status_code == 200
    assert "Approve this top-up?" in page and 'name="confirmed" value="yes"' in page
    assert 'value="Looks fine"' in page and "Trip &lt;b&gt;fund&lt;/b&gt;" in page
    assert balance(client, world["user"]) == 0


def test_approving_credits_the_user_and_says_so(client, world):
    reply = decide(client, world, note="Have fun")
    assert (reply.status_code, reply.headers["Location"]) == (303, "/admin/topups")
    assert flashes(client) == ["Approved $50.00 for ann@example.com."]
    assert balance(client, world["user"]) == 50
    tx = client.get(f"/transactions/{world['pending']}", headers=world["user"]).get_json()
    assert (tx["status"], tx["admin_notes"]) == ("success", "Have fun")


def test_nothing_the_approval_message_names_is_read_after_the_approval_is_committed(app, client, world):
    """A read after the commit could fail and show an error page for an approval that was made."""
    happened = []
    with app.app_context():
        engine = db.engine
    on_statement = lambda conn, cursor, statement, *rest: happened.append(statement)  # noqa: E731
    on_commit = lambda conn: happened.append("<commit>")  # noqa: E731
    event.listen(engine, "after_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    try:
        assert decide(client, world).status_code == 303
    finally:
        event.remove(engine, "after_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)
    committed = next(i for i, s in enumerate(happened) if s == "<commit>" or s.rstrip().endswith("COMMIT"))
    assert not [s for s in happened[committed + 1:] if "FROM users" in s], happened[committed:]
    assert "Approved $50.00 for ann@example.com." in flashes(client)


def test_rejecting_records_the_note_and_moves_no_money(client, world):
    decide(client, world, decision="reject", note="No receipt")
    assert flashes(client) == ["Rejected $50.00 for ann@example.com."]
    tx = client.get(f"/transactions/{world['pending']}", headers=world["user"]).get_json()
    assert (tx["status"], tx["admin_notes"]) == ("failed", "No receipt")
    assert balance(client, world["user"]) == 0


def test_a_double_click_credits_once_and_the_second_click_is_told_why(client, world):
    decide(client, world)
    decide(client, world)
    messages = flashes(client)
    assert messages[0] == "Approved $50.00 for ann@example.com."
    assert re.fullmatch(r"Not approved again: you already approved this top-up at .+ UTC\. "
                        r"Nothing more was credited\.", messages[1])
    assert balance(client, world["user"]) == 50


def test_an_approval_after_a_rejection_is_told_nothing_was_credited_at_all(client, world):
    decide(client, world, decision="reject")
    decide(client, world)
    assert re.fullmatch(r"Not approved again: you already rejected this top-up at .+ UTC\. Nothing was credited\.",
                        flashes(client)[1])
    assert balance(client, world["user"]) == 0


def test_asking_to_confirm_a_top_up_already_decided_says_so_instead(client, world):
    decide(client, world)
    reply = decide(client, world, decision="reject", confirmed="")
    assert (reply.status_code, reply.headers["Location"]) == (303, "/admin/topups")
    assert flashes(client)[-1].startswith("Not rejected again: you already approved this top-up at ")


def test_the_second_admin_is_told_which_admin_decided_first(app, client, auth, world):
    auth.new_admin("second@example.com")
    other = app.test_client()
    csrf = log_in(other, "second@example.com", "admin-password-1")
    decide(client, world)
    other.post(f"/admin/topups/{world['pending']}/decide",
               data={"decision": "reject", "confirmed": "yes", "csrf_token": csrf}, headers=HTML)
    assert re.fullmatch(r"Not rejected again: first@example\.com already approved this top-up at .+ UTC\. "
                        r"Nothing more was credited\.", flashes(other)[0])
    assert balance(client, world["user"]) == 50


@pytest.mark.parametrize(("form", "status", "says"), [
    ({"decision": "maybe"}, 422, "Choose approve or reject."),
    ({"decision": "approve", "note": "n" * 501}, 422, "Use at most 500 characters."),
])
def test_a_bad_decision_is_explained_on_the_confirmation_page(client, world, form, status, says):
    reply = client.post(f"/admin/topups/{world['pending']}/decide",
                        data={**form, "confirmed": "yes", "csrf_token": world["csrf"]}, headers=HTML)
    page = reply.get_data(as_text=True)
    assert reply.status_code == status and says in page
    if "note" in form:
        assert f'value="{form["note"]}"' in page
    assert balance(client, world["user"]) == 0


@pytest.mark.parametrize("transaction_id", ["00000000-0000-0000-0000-000000000000", "not-an-id", "nul%00id"])
def test_deciding_an_unknown_top_up_is_the_404_page(client, world, transaction_id):
    for confirmed in ("", "yes"):
        reply = client.post(f"/admin/topups/{transaction_id}/decide",
                            data={"decision": "approve", "confirmed": confirmed, "csrf_token": world["csrf"]},
                            headers=HTML)
        assert reply.status_code == 404 and "Page not found" in reply.get_data(as_text=True)


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_a_decision_without_its_csrf_token_is_refused(client, world, token):
    data = {"decision": "approve", "confirmed": "yes"}
    if token is not None:
        data["csrf_token"] = token
    reply = client.post(f"/admin/topups/{world['pending']}/decide", data=data, headers=HTML)
    assert reply.status_code == 400
    assert balance(client, world["user"]) == 0


def test_processed_top_ups_show_who_decided_and_when(client, world):
    decide(client, world, note="ok <i>then</i>")
    page = client.get("/admin/topups/processed", headers=HTML).get_data(as_text=True)
    row = page[page.index(f'data-tx-id="{world["pending"]}"'):]
    row = row[:row.index("</tr>")]
    assert "ann@example.com" in row and "first@example.com" in row and "Approved" in row
    assert "Note: ok &lt;i&gt;then&lt;/i&gt;" in row and re.search(r"<time datetime=\"[^\"]+\">.+ UTC</time>", row)


def test_the_users_page_is_paged_by_email_and_its_refresh_reads_only_that_page(client, auth, world):
    for name in ("dora", "bob", "cy", "eve"):
        auth.new_user(f"{name}@example.com")
    everyone = sorted(["first@example.com", "ann@example.com", "dora@example.com", "bob@example.com",
                       "cy@example.com", "eve@example.com"])
    seen, query, pages = [], "?limit=4", 0
    while query is not None:
        page = client.get("/admin/users" + query, headers=HTML).get_data(as_text=True)
        seen += re.findall(r'class="user-email">([^<]+)<', page)
        pages += 1
        found = re.search(r'href="/admin/users\?([^"]+)"[^>]*data-next', page)
        query = "?" + html_lib.unescape(found.group(1)) if found else None
    assert seen == everyone and pages == 2, "the next page keeps the limit and starts after the last email shown"
    assert 'href="/admin/users?limit=4" class="button button-quiet">&larr; First' in page


def test_the_users_page_refreshes_the_rows_it_shows_even_after_someone_signs_up_before_them(client, auth, world):
    shown_ids = [auth.new_user(f"{name}@example.com")[0] for name in ("bob", "cy")]
    auth.new_user("aaron@example.com")  # sorts first: a window by position would now leave cy out
    numbers = client.get(f"/admin/users/balances?ids={shown_ids[0]},{shown_ids[1]}",
                         headers={"Accept": "application/json"}).get_json()["items"]
    assert sorted(item["user_id"] for item in numbers) == sorted(shown_ids)


@pytest.mark.parametrize("path, said", [
    ("/admin/users?limit=0", "limit must be a whole number from 1 to 100"),
    ("/admin/users?limit=many", "limit must be a whole number from 1 to 100"),
    ("/admin/users?after=" + "a" * 255, "after must be an email from the previous page"),
    ("/admin/users?after=a%00b", "after must be an email from the previous page"),
    ("/admin/users/balances", "ids must be up to 100 user ids separated by commas"),
    ("/admin/users/balances?ids=1,,2", "ids must be up to 100 user ids separated by commas"),
    ("/admin/users/balances?ids=1,-2", "ids must be up to 100 user ids separated by commas"),
    ("/admin/users/balances?ids=" + ",".join(["1"] * 101), "ids must be up to 100 user ids separated by commas"),
    ("/admin/users/balances?ids=" + "9" * 19, "ids must be up to 100 user ids separated by commas"),
], ids=["limit-zero", "limit-not-a-number", "after-too-long", "after-nul", "no-ids", "empty-id", "negative-id",
        "too-many-ids", "id-too-big"])
def test_a_users_page_position_that_cannot_be_one_is_refused_with_a_message(client, world, path, said):
    reply = client.get(path, headers=HTML)
    assert reply.status_code == 400 and said in html_lib.unescape(reply.get_data(as_text=True))


def test_users_are_listed_with_balances_and_their_histories(client, world):
    decide(client, world)
    page = client.get("/admin/users", headers=HTML).get_data(as_text=True)
    assert re.search(r'data-user-id="%d".*?\$50\.00' % world["user_id"], page, re.S)
    assert f'href="/admin/users/{world["user_id"]}"' in page

    numbers = client.get(f"/admin/users/balances?ids={world['user_id']}",
                         headers={"Accept": "application/json"}).get_json()["items"]
    ann = next(item for item in numbers if item["user_id"] == world["user_id"])
    assert (ann["balance"], ann["seq"]) == (50, 1) and ann["updated_at"].endswith("Z")

    history = client.get(f"/admin/users/{world['user_id']}", headers=HTML)
    assert history.status_code == 200 and "Trip &lt;b&gt;fund&lt;/b&gt;" in history.get_data(as_text=True)
    assert client.get("/admin/users/999999", headers=HTML).status_code == 404


def test_a_browser_gets_error_pages_in_the_sites_look_and_nothing_leaks(app, client):
    @app.get("/pages-explode")
    def explode():
        raise RuntimeError("secret connection string postgres://u:hunter2@db")

    missing = client.get("/no-such-page", headers=HTML)
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert "Page not found" in missing.get_data(as_text=True)
    assert 'href="/static/css/app.css"' in missing.get_data(as_text=True)

    broken = client.get("/pages-explode", headers=HTML)
    page = broken.get_data(as_text=True)
    assert broken.status_code == 500 and "Something went wrong" in page and "hunter2" not in page


def test_an_approval_sent_after_the_login_ended_does_nothing_and_leads_back_to_the_queue(app, client, world):
    """The queue was left open past the hour the login lasts; the click must not be lost silently, nor count."""
    from datetime import timedelta

    from flask_jwt_extended import create_access_token, decode_token

    with app.app_context():  # the cookie the open page was served with, now past its hour
        ended = create_access_token(str(world["admin_id"]), expires_delta=timedelta(seconds=-5))
        form_token = decode_token(ended, allow_expired=True)["csrf"]
    client.set_cookie("balance_access", ended)
    reply = client.post(f"/admin/topups/{world['pending']}/decide",
                        data={"decision": "approve", "confirmed": "yes", "csrf_token": form_token},
                        headers=dict(HTML, Referer="http://localhost/admin/topups"))
    assert (reply.status_code, reply.headers.get("Location")) == (303, "/login?next=%2Fadmin%2Ftopups")
    assert balance(client, world["user"]) == 0

    login_page = client.get(reply.headers["Location"], headers=HTML).get_data(as_text=True)
    assert "so nothing was done. Log in and send it again." in login_page
    token = TOKEN.search(login_page).group(1)
    way_back = re.search(r'name="next" value="([^"]*)"', login_page).group(1)
    back = client.post("/login", data={"email": "first@example.com", "password": "admin-password-1",
                                       "csrf_token": token, "next": way_back}, headers=HTML)
    assert back.headers["Location"] == "/admin/topups"
    queue = client.get("/admin/topups", headers=HTML).get_data(as_text=True)
    assert f'data-tx-id="{world["pending"]}"' in queue, "still pending, to be approved again"
    world["csrf"] = TOKEN.search(queue).group(1)
    assert decide(client, world).status_code == 303
    assert balance(client, world["user"]) == 50
