"""Signing up, logging in and out through the pages: the cookie, its CSRF protection, and where browsers are sent."""
from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import unquote

import pytest
from flask_jwt_extended import create_access_token, decode_token

HTML = {"Accept": "text/html,application/xhtml+xml"}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(reply) -> str:
    return TOKEN.search(reply.get_data(as_text=True)).group(1)


def log_in(client, email: str, password: str = "password123", **extra):
    token = csrf(client.get("/login", headers=HTML))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token, **extra},
                       headers=HTML)


def access_cookie(reply) -> str | None:
    return next((h for h in reply.headers.getlist("Set-Cookie") if h.startswith("balance_access=")), None)


@pytest.mark.parametrize("path", ["/", "/?cursor=abc", "/admin", "/admin/topups", "/admin/topups/processed",
                                  "/admin/users", "/admin/users/1"])
def test_a_visitor_is_sent_to_log_in_and_back_afterwards(client, path):
    reply = client.get(path, headers=HTML)
    assert reply.status_code == 303
    location = reply.headers["Location"]
    assert location.startswith("/login?next=")
    assert unquote(location.split("next=", 1)[1]) == path


LOGIN_ENDED = "Your login had ended before that form was sent, so nothing was done. Log in and send it again."


@pytest.fixture
def ended_login(app, client, auth) -> dict:
    """The browser still holds the login cookie of a page served more than an hour ago; returns that page's form
    fields (its forms carry the cookie's CSRF value)."""
    user_id = auth.register("ann@example.com").get_json()["user"]["id"]
    with app.app_context():
        token = create_access_token(str(user_id), expires_delta=timedelta(seconds=-5))
        csrf_value = decode_token(token, allow_expired=True)["csrf"]
    client.set_cookie("balance_access", token)
    return {"amount": "5", "csrf_token": csrf_value}


@pytest.mark.parametrize("path, referrer", [
    ("/topup", "http://localhost/"),
    ("/book", "http://localhost/?cursor=abc"),
    ("/admin/topups/x/decide", "http://localhost/admin/topups"),
])
def test_a_form_sent_after_the_login_ended_is_not_carried_out_and_leads_back_to_its_page_after_logging_in(
        client, ended_login, path, referrer):
    reply = client.post(path, data=ended_login, headers=dict(HTML, Referer=referrer))
    assert reply.status_code == 303
    back = referrer.removeprefix("http://localhost")
    assert unquote(reply.headers["Location"].split("next=", 1)[1]) == back
    login_page = client.get(reply.headers["Location"], headers=HTML).get_data(as_text=True)
    assert LOGIN_ENDED in login_page
    assert f'name="next" value="{html.escape(back)}"' in login_page, "the log-in form carries the way back"


@pytest.mark.parametrize("referrer, why", [
    (None, "no Referer"),
    ("http://evil.example/admin/topups", "another site"),
    ("https://localhost.evil.example/", "a look-alike host"),
    ("http://localhost@evil.example/", "credentials trick"),
    ("javascript://localhost/%0aalert(1)", "not http"),
    ("http://localhost//evil.example/", "a path that is a host"),
    ("not a url", "not a URL"),
    ("http://localhost/topup", "a form's own address: a GET there answers 405"),
    ("http://localhost/admin/topups/x/decide", "the no-script confirmation, rendered by a POST"),
    ("http://localhost/no-such-page", "no page at all"),
    ("http://localhost/?cursor=" + "a" * 1000, "too long to carry through /login's address"),
])
def test_a_form_sent_after_the_login_ended_from_no_page_to_come_back_to_leads_to_the_plain_login(
        client, ended_login, referrer, why):
    headers = dict(HTML, Referer=referrer) if referrer else HTML
    reply = client.post("/topup", data=ended_login, headers=headers)
    assert (reply.status_code, reply.headers["Location"]) == (303, "/login")
    assert LOGIN_ENDED in client.get("/login", headers=HTML).get_data(as_text=True)


def test_logging_out_after_the_login_ended_just_says_so(client, ended_login):
    reply = client.post("/logout", data=ended_login, headers=dict(HTML, Referer="http://localhost/"))
    assert (reply.status_code, reply.headers["Location"]) == (303, "/login")
    page = client.get("/login", headers=HTML).get_data(as_text=True)
    assert "You are logged out." in page and LOGIN_ENDED not in page


@pytest.mark.parametrize("path", ["/topup", "/book", "/logout", "/admin/topups/x/decide"])
def test_a_form_sent_with_no_login_at_all_goes_to_log_in_without_a_message(client, path):
    """A visitor, or another site's form (the cookie is SameSite=Lax, so it does not come along)."""
    reply = client.post(path, data={"amount": "5"}, headers=dict(HTML, Referer="http://localhost/"))
    assert (reply.status_code, reply.headers["Location"]) == (303, "/login")
    assert LOGIN_ENDED not in client.get("/login", headers=HTML).get_data(as_text=True)


def test_a_page_asked_for_with_head_comes_back_to_itself_without_a_message(client):
    reply = client.head("/admin/topups", headers=HTML)
    assert (reply.status_code, reply.headers["Location"]) == (303, "/login?next=%2Fadmin%2Ftopups")
    assert LOGIN_ENDED not in client.get("/login", headers=HTML).get_data(as_text=True)


def test_the_api_still_answers_json_401_to_a_browser(client):
    reply = client.get("/balance", headers=HTML)
    assert reply.status_code == 401 and reply.get_json()["error"]["code"] == "unauthorized"


def test_logging_in_sets_an_httponly_samesite_cookie_and_goes_to_the_wallet(client, auth):
    auth.register("ann@example.com")
    session_cookie = client.get("/login", headers=HTML).headers["Set-Cookie"]
    assert session_cookie.startswith("session=") and "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    reply = log_in(client, "ann@example.com")
    assert (reply.status_code, reply.headers["Location"]) == (303, "/")
    cookie = access_cookie(reply)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    page = client.get("/", headers=HTML)
    assert page.status_code == 200
    assert "ann@example.com" in page.get_data(as_text=True)


def test_an_admin_logging_in_goes_to_the_queue(client, auth):
    auth.new_admin("boss@example.com")
    reply = log_in(client, "boss@example.com", "admin-password-1")
    assert reply.headers["Location"] == "/admin/topups"


@pytest.mark.parametrize(("next_", "lands"), [("/admin/users", "/admin/users"), ("/?cursor=x", "/?cursor=x"),
                                              ("//evil.example/", "/admin/topups"),
                                              ("https://evil.example/", "/admin/topups"),
                                              ("/\\evil.example", "/admin/topups"), ("", "/admin/topups"),
                                              ("/\t/evil.example", "/admin/topups"),
                                              ("/\r\nSet-Cookie: x=1", "/admin/topups")])
def test_after_logging_in_only_a_path_on_this_site_is_followed(client, auth, next_, lands):
    auth.new_admin("boss@example.com")
    assert log_in(client, "boss@example.com", "admin-password-1", next=next_).headers["Location"] == lands


@pytest.mark.parametrize(("email", "password"), [("ann@example.com", "wrong-password"),
                                                 ("nobody@example.com", "password123"), ("", "")])
def test_a_failed_log_in_says_so_and_keeps_the_email_but_never_the_password(client, auth, email, password):
    auth.register("ann@example.com")
    reply = log_in(client, email, password)
    html = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert "Invalid email or password." in html
    assert f'value="{email}"' in html
    assert "value=" not in re.search(r'<input id="login-password"[^>]*>', html).group(0)
    assert access_cookie(reply) is None


@pytest.mark.parametrize("email", ["ann@example.com\x00", "\x00", "ann@exa\x07mple.com", "a" * 300 + "@example.com"],
                         ids=["nul-after", "nul", "bell", "too-long"])
def test_an_email_no_account_can_have_is_a_failed_log_in_not_an_error(client, auth, email):
    auth.register("ann@example.com")
    reply = log_in(client, email, "password123")
    assert reply.status_code == 422
    assert "Invalid email or password." in reply.get_data(as_text=True)
    assert access_cookie(reply) is None


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_the_log_in_form_without_its_session_token_is_refused(client, auth, token):
    auth.register("ann@example.com")
    client.get("/login", headers=HTML)
    data = {"email": "ann@example.com", "password": "password123"}
    if token is not None:
        data["csrf_token"] = token
    reply = client.post("/login", data=data, headers=HTML)
    assert reply.status_code == 400
    assert "This form has expired or did not come from this site" in reply.get_data(as_text=True)
    assert access_cookie(reply) is None


def test_signing_up_opens_an_empty_wallet_and_logs_in(client):
    token = csrf(client.get("/signup", headers=HTML))
    reply = client.post("/signup", data={"email": " New@Example.com ", "name": "New Person", "password": "password123",
                                         "csrf_token": token}, headers=HTML)
    assert (reply.status_code, reply.headers["Location"]) == (303, "/")
    page = client.get("/", headers=HTML).get_data(as_text=True)
    assert "new@example.com" in page and 'id="balance"' in page and "$0.00" in page
    assert "Welcome! Your wallet is open" in page


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"email": "not-an-email"}, "email", "Not a valid email address."),
    ({"email": ""}, "email", "Enter your email address."),
    ({"password": "short"}, "password", "Use 8 to 128 characters."),
    ({"password": "x" * 129}, "password", "Use 8 to 128 characters."),
    ({"name": "n" * 101}, "name", "Use at most 100 characters."),
    ({"email": "taken@example.com"}, "email", "An account with this email already exists. Log in instead?"),
])
def test_sign_up_mistakes_are_shown_by_their_field_with_the_input_kept(client, auth, form, field, message):
    auth.register("taken@example.com")
    token = csrf(client.get("/signup", headers=HTML))
    data = {"email": "kept@example.com", "name": "Kept Name", "password": "password123", **form, "csrf_token": token}
    reply = client.post("/signup", data=data, headers=HTML)
    html = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert f'id="signup-{field}-error">{message}</p>' in html.replace("&#39;", "'")
    if field != "email":
        assert f'value="{data["email"]}"' in html
    if field != "name":
        assert 'value="Kept Name"' in html
    assert data["password"] not in html
    assert access_cookie(reply) is None


def test_logging_out_needs_the_forms_token_and_then_drops_the_cookie(client, auth):
    auth.register("ann@example.com")
    log_in(client, "ann@example.com")
    token = csrf(client.get("/", headers=HTML))

    refused = client.post("/logout", headers=HTML)
    assert refused.status_code == 400
    assert client.get("/", headers=HTML).status_code == 200

    reply = client.post("/logout", data={"csrf_token": token}, headers=HTML)
    assert (reply.status_code, reply.headers["Location"]) == (303, "/login")
    assert "balance_access=;" in access_cookie(reply)
    assert client.get("/", headers=HTML).status_code == 303
    assert "You are logged out." in client.get("/login", headers=HTML).get_data(as_text=True)


@pytest.mark.parametrize("kind", ["expired", "garbage", "wrong-secret"])
def test_a_stale_or_bad_cookie_sends_the_browser_to_log_in_and_is_cleared(app, client, auth, kind):
    user_id = auth.register("ann@example.com").get_json()["user"]["id"]
    with app.app_context():
        if kind == "expired":
            token = create_access_token(str(user_id), expires_delta=timedelta(seconds=-5))
        elif kind == "garbage":
            token = "not.a.jwt"
        else:
            app.config["JWT_SECRET_KEY"], real = "another-secret-that-is-long-enough-01", app.config["JWT_SECRET_KEY"]
            token = create_access_token(str(user_id))
            app.config["JWT_SECRET_KEY"] = real
    client.set_cookie("balance_access", token)
    reply = client.get("/", headers=HTML)
    assert (reply.status_code, reply.headers["Location"]) == (303, "/login?next=%2F")
    assert "balance_access=;" in access_cookie(reply)


def test_pages_forbid_framing_and_inline_scripts_and_are_not_cached(client, auth):
    auth.register("ann@example.com")
    log_in(client, "ann@example.com")
    reply = client.get("/", headers=HTML)
    policy = reply.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/no-such-page", "/admin/users/abc", "/admin/topups/x/decide"])
def test_a_page_the_router_refuses_still_shows_who_is_logged_in_and_logging_out_works(client, auth, path):
    auth.new_admin("boss@example.com")
    log_in(client, "boss@example.com", "admin-password-1")
    reply = client.get(path, headers=HTML)
    page = reply.get_data(as_text=True)
    assert reply.status_code in (404, 405)
    assert "boss@example.com" in page and "Sign up" not in page
    out = client.post("/logout", data={"csrf_token": csrf(reply)}, headers=HTML)
    assert out.status_code == 303 and out.headers["Location"] == "/login"


def test_a_page_the_router_refuses_shows_a_visitor_the_way_to_log_in(client):
    page = client.get("/no-such-page", headers=HTML).get_data(as_text=True)
    assert "Log in" in page and "Log out" not in page
