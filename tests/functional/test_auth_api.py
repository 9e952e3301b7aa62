"""``/auth``: registering and logging in, through the HTTP API."""
from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher

from tests.support import databases
from tests.support.api import assert_error


def test_registering_answers_201_with_the_public_user_and_an_empty_wallet(client, auth):
    reply = auth.register("Alice@Example.com ", password="correct-horse", name="Alice")
    assert reply.status_code == 201
    user = reply.get_json()["user"]
    assert user == {"id": user["id"], "email": "alice@example.com", "name": "Alice", "role": "user"}
    headers = auth.headers_for("alice@example.com", "correct-horse")
    balance = client.get("/balance", headers=headers).get_json()
    assert (balance["balance"], balance["currency"], balance["seq"]) == (0, "USD", 0)


def test_the_name_is_optional(auth):
    reply = auth.client.post("/auth/register", json={"email": "noname@example.com", "password": "password123"})
    assert reply.status_code == 201
    assert reply.get_json()["user"]["name"] is None


@pytest.mark.parametrize("again", ["taken@example.com", "TAKEN@example.com", "  taken@example.com"])
def test_registering_a_taken_email_is_a_409_whatever_its_case(auth, again):
    assert auth.register("taken@example.com").status_code == 201
    assert_error(auth.register(again), 409, "email_taken", ["email"])


def test_logging_in_answers_a_bearer_token_that_works(client, auth):
    user_id, _ = auth.new_user("bob@example.com")
    reply = auth.login("bob@example.com")
    assert reply.status_code == 200
    body = reply.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "user"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert body["user"] == {"id": user_id, "email": "bob@example.com", "name": None, "role": "user"}
    assert client.get("/balance", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 200


def test_logging_in_ignores_the_case_and_spaces_of_the_email(auth):
    auth.new_user("carol@example.com")
    assert auth.login("  Carol@EXAMPLE.com").status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [("dave@example.com", "wrong-password"), ("nobody@example.com", "password123"),
     ("dave@example.com", "PASSWORD123"), ("dave@example.com", "password123 ")],
    ids=["wrong password", "unknown email", "password case", "password with a space"],
)
def test_bad_credentials_are_a_401_that_does_not_say_which_part_was_wrong(auth, email, password):
    auth.new_user("dave@example.com")
    error = assert_error(auth.login(email, password), 401, "invalid_credentials")
    assert error["message"] == "invalid email or password"


def test_the_password_is_stored_hashed_with_argon2(app, auth):
    auth.new_user("erin@example.com", password="plain-text-pw")
    with app.app_context():
        from balance.extensions import db
        from balance.models import User

        stored = db.session.query(User).filter_by(email="erin@example.com").one().password_hash
    assert stored.startswith("$argon2") and "plain-text-pw" not in stored


def test_an_admin_logs_in_with_the_admin_role_in_the_answer(auth):
    auth.new_admin("root@example.com", password="admin-password-1")
    assert auth.login("root@example.com", "admin-password-1").get_json()["user"]["role"] == "admin"


def test_logins_beyond_the_rate_limit_get_429_with_the_json_error_body(database_uri):
    app = databases.make_app(database_uri, LOGIN_RATE_LIMIT="3 per hour")
    try:
        client = app.test_client()
        client.post("/auth/register", json={"email": "fay@example.com", "password": "password123"})
        attempts = [client.post("/auth/login", json={"email": "fay@example.com", "password": p})
                    for p in ("password123", "wrong-one-1", "password123")]
        assert [r.status_code for r in attempts] == [200, 401, 200]

        refused = client.post("/auth/login", json={"email": "fay@example.com", "password": "password123"})

        error = assert_error(refused, 429, "rate_limited")
        assert "3 per 1 hour" in error["message"]
        assert 60 < int(refused.headers["Retry-After"]) <= 3600, "the client is told when the hour's window ends"
        assert client.post("/auth/register", json={"email": "gus@example.com", "password": "password123"}
                           ).status_code == 201, "only logging in is limited"
    finally:
        with app.app_context():
            from balance.extensions import db

            db.session.remove()
            db.engine.dispose()


def test_the_api_and_the_login_page_share_one_login_budget_per_client(database_uri):
    """Else a client could try twice the configured number of passwords, half through each door."""
    app = databases.make_app(database_uri, LOGIN_RATE_LIMIT="3 per hour")
    try:
        client = app.test_client()
        client.post("/auth/register", json={"email": "ivy@example.com", "password": "password123"})
        html = {"Accept": "text/html"}
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login", headers=html).get_data(
            as_text=True)).group(1)

        def page_login():
            return client.post("/login", data={"email": "ivy@example.com", "password": "wrong-password",
                                               "csrf_token": token}, headers=html)

        def api_login():
            return client.post("/auth/login", json={"email": "ivy@example.com", "password": "wrong-password"})

        assert [api_login().status_code, page_login().status_code, api_login().status_code] == [401, 422, 401]
        assert (page_login().status_code, api_login().status_code) == (429, 429)
    finally:
        with app.app_context():
            from balance.extensions import db

            db.session.remove()
            db.engine.dispose()


@pytest.mark.parametrize(("trusted_proxies", "forwarded_for", "limited"), [
    (1, "203.0.113.2", False),
    (1, "203.0.113.1, 203.0.113.2", False),  # the proxy appends the address it saw: the last one counts
    (1, "203.0.113.2, 203.0.113.1", True),  # a client writing another address before its own gains nothing
    (0, "203.0.113.2", True),  # no proxy configured: the header is the client's say-so and is ignored
], ids=["another client behind the proxy", "another client that forged a first hop",
        "the same client that forged a first hop", "no proxy configured"])
def test_the_login_limit_counts_per_client_behind_the_configured_number_of_proxies(database_uri, trusted_proxies,
                                                                                   forwarded_for, limited):
    app = databases.make_app(database_uri, LOGIN_RATE_LIMIT="2 per hour", TRUSTED_PROXIES=trusted_proxies)
    try:
        client = app.test_client()
        client.post("/auth/register", json={"email": "hal@example.com", "password": "password123"})

        def login(address: str):
            return client.post("/auth/login", json={"email": "hal@example.com", "password": "password123"},
                               headers={"X-Forwarded-For": address})

        assert [login("203.0.113.1").status_code for _ in range(2)] == [200, 200]
        assert login("203.0.113.1").status_code == 429
        assert login(forwarded_for).status_code == (429 if limited else 200)
    finally:
        with app.app_context():
            from balance.extensions import db

            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def password_checks(monkeypatch):
    """Every argon2 hash and verify the app runs (they still run: this only counts them)."""
    calls = []
    for name in ("hash", "verify"):
        real = getattr(PasswordHasher, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(PasswordHasher, name, counted)
    return calls


def test_a_log_in_with_an_unknown_email_does_the_same_password_work_as_one_with_a_wrong_password(auth,
                                                                                                  password_checks):
    auth.register("ann@example.com")
    auth.login("warm@example.com", "anything")  # the first unknown email of a process makes the stand-in hash
    answers = {}
    for email in ("ann@example.com", "nobody@example.com", "NOBODY2@example.com"):
        password_checks.clear()
        reply = auth.login(email, "wrong-password")
        answers[email] = (reply.status_code, reply.get_json()["error"]["code"], list(password_checks))
    assert all(a == (401, "invalid_credentials", ["verify"]) for a in answers.values()), answers
