"""Tables of bad input for every endpoint: each is a 400 with the error body naming what was wrong, never a 500,
and changes nothing.

Since bad input must change nothing, the tables share one app per database for the whole module (a user
with 10.00 and a pending top-up, and an admin), and every test checks the books are as they were.
"""
from __future__ import annotations

import base64
import io
import json
import os
from types import SimpleNamespace

import pytest

from tests.conftest import DATABASES
from tests.support import databases
from tests.support.api import assert_error
from tests.support.auth import AuthActions

OK_EMAIL, OK_PASSWORD = "valid@example.com", "password123"


def cursor_of(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture(scope="module", params=DATABASES)
def world(request, tmp_path_factory):
    """One app per database for this module, with a funded user, a pending top-up and an admin."""
    if request.param == "sqlite":
        uri = databases.copy_sqlite(request.getfixturevalue("sqlite_template_path"),
                                    str(tmp_path_factory.mktemp("bad-input") / "db.sqlite3"))
    else:
        server, name = request.getfixturevalue("postgres_server_url"), f"balance_bad_input_{os.getpid()}"
        uri = databases.create_postgres_database(server, name)
        request.addfinalizer(lambda: databases.drop_postgres_database(server, name))
    app = databases.make_app(uri)
    client = app.test_client()
    auth = AuthActions(client)
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    auth.fund(user, admin, 10)
    pending = client.post("/transactions/topup", json={"amount": 7}, headers=user).get_json()["id"]
    yield SimpleNamespace(app=app, client=client, auth=auth, user=user, admin=admin, pending=pending)
    with app.app_context():
        from balance.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def unchanged(world):
    """Fails the test if it changed the user's balance or transactions, or the admins' queue."""

    def books():
        c = world.client
        return (c.get("/balance", headers=world.user).get_json(),
                c.get("/transactions", query_string={"limit": 100}, headers=world.user).get_json(),
                c.get("/transactions/topup/pending", headers=world.admin).get_json())

    before = books()
    yield world
    assert books() == before, "bad input changed the books"


# --- amounts, as the JSON text a client sends ---------------------------------------------------------------------

BAD_AMOUNTS = [
    ("0", "greater than zero"),
    ("0.00", "greater than zero"),
    ("-0", "greater than zero"),
    ("-5", "greater than zero"),
    ("-0.01", "greater than zero"),
    ("0.001", "at most 2 decimals"),
    ("12.345", "at most 2 decimals"),
    ("1.0000000000000000000000000000001", "at most 2 decimals"),
    ("1e-7", "at most 2 decimals"),
    ("1000000.01", "must not exceed 1000000.00"),
    ("1000001", "must not exceed 1000000.00"),
    ("1e400", "must not exceed 1000000.00"),
    ("1e999999999", "must not exceed 1000000.00"),
    ('"50"', "must be a number"),
    ('"12.50"', "must be a number"),
    ('""', "must be a number"),
    ("true", "must be a number"),
    ("false", "must be a number"),
    ("null", "may not be null"),
    ("[50]", "must be a number"),
    ('{"value": 50}', "must be a number"),
]
MONEY_ENDPOINTS = ["/transactions/topup", "/transactions/payment"]


@pytest.mark.parametrize(("amount", "reason"), BAD_AMOUNTS, ids=[a for a, _ in BAD_AMOUNTS])
def test_an_amount_that_is_not_a_plain_positive_value_within_the_limit_is_a_400(unchanged, amount, reason):
    for endpoint in MONEY_ENDPOINTS:
        reply = unchanged.client.post(endpoint, data=f'{{"amount": {amount}}}', content_type="application/json",
                                      headers=unchanged.user)
        error = assert_error(reply, 400, "validation_error", ["amount"])
        assert reason.lower() in error["fields"]["amount"].lower(), (endpoint, error)


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "1" + "0" * 5000],
                         ids=["NaN", "Infinity", "-Infinity", "5001 digits"])
def test_an_amount_json_itself_cannot_carry_exactly_is_a_400(unchanged, amount):
    for endpoint in MONEY_ENDPOINTS:
        reply = unchanged.client.post(endpoint, data=f'{{"amount": {amount}}}', content_type="application/json",
                                      headers=unchanged.user)
        assert_error(reply, 400, "validation_error")


def test_an_amount_with_thousands_of_digits_is_refused_in_words_a_client_can_act_on(unchanged):
    reply = unchanged.client.post("/transactions/topup", data='{"amount": 1' + "0" * 5000 + "}",
                                  content_type="application/json", headers=unchanged.user)
    error = assert_error(reply, 400, "validation_error")
    assert error["message"] == "the body is not valid JSON here: a number in it has too many digits"


def test_a_body_over_the_size_limit_is_a_413_at_every_endpoint_that_takes_one(unchanged):
    big = json.dumps({"amount": 5, "description": "x" * 70_000})
    for method, path in ENDPOINTS:
        headers = unchanged.admin if "process" in path else unchanged.user
        reply = unchanged.client.open(path.format(pending=unchanged.pending), method=method, data=big,
                                      content_type="application/json", headers=headers)
        error = assert_error(reply, 413, "request_too_large")
        assert error["message"] == "the request body is larger than the 65536 bytes accepted", path


@pytest.mark.parametrize("size", [70_000, 65_536], ids=["well over the limit", "just over it"])
def test_a_chunked_body_that_reaches_the_size_limit_is_a_413_not_a_prefix_read_as_bad_json(unchanged, size):
    """No Content-Length to refuse up front (Transfer-Encoding: chunked, as gunicorn passes it on)."""
    body = b'{"amount": 5, "description": "' + b"x" * size + b'"}'
    for method, path in ENDPOINTS:
        headers = unchanged.admin if "process" in path else unchanged.user
        reply = unchanged.client.open(path.format(pending=unchanged.pending), method=method,
                                      input_stream=io.BytesIO(body), content_type="application/json",
                                      headers={**headers, "Transfer-Encoding": "chunked"},
                                      environ_overrides={"wsgi.input_terminated": True})
        assert_error(reply, 413, "request_too_large")


def test_a_chunked_body_under_the_size_limit_is_read_whole(unchanged):
    body = json.dumps({"amount": 5, "description": "x" * 60_000}).encode()
    reply = unchanged.client.post("/transactions/payment", input_stream=io.BytesIO(body),
                                  content_type="application/json",
                                  headers={**unchanged.user, "Transfer-Encoding": "chunked"},
                                  environ_overrides={"wsgi.input_terminated": True})
    assert_error(reply, 400, "validation_error", ["description"])  # read whole: its description is too long


def test_a_page_form_over_the_size_limit_gets_a_page_saying_so(unchanged):
    reply = unchanged.client.post("/login", data={"email": "x" * 70_000, "password": "p"},
                                  headers={"Accept": "text/html"})
    assert reply.status_code == 413 and reply.mimetype == "text/html"
    assert "the request body is larger than the 65536 bytes accepted" in reply.get_data(as_text=True)


def test_the_per_transaction_maximum_is_configurable(database_uri):
    app = databases.make_app(database_uri, MAX_TRANSACTION_AMOUNT="250.00")
    try:
        auth = AuthActions(app.test_client())
        _, user = auth.new_user()
        assert auth.client.post("/transactions/topup", json={"amount": 250}, headers=user).status_code == 201
        error = assert_error(auth.client.post("/transactions/topup", data='{"amount": 250.01}',
                                              content_type="application/json", headers=user), 400, "validation_error")
        assert error["fields"]["amount"] == "must not exceed 250.00"
    finally:
        with app.app_context():
            from balance.extensions import db

            db.session.remove()
            db.engine.dispose()


# --- bodies field by field ----------------------------------------------------------------------------------------

REGISTER = [
    ({}, ["email", "password"]),
    ({"password": OK_PASSWORD}, ["email"]),
    ({"email": OK_EMAIL}, ["password"]),
    ({"email": "not-an-email", "password": OK_PASSWORD}, ["email"]),
    ({"email": "two@@example.com", "password": OK_PASSWORD}, ["email"]),
    ({"email": "a" * 250 + "@example.com", "password": OK_PASSWORD}, ["email"]),
    ({"email": 5, "password": OK_PASSWORD}, ["email"]),
    ({"email": None, "password": OK_PASSWORD}, ["email"]),
    ({"email": [OK_EMAIL], "password": OK_PASSWORD}, ["email"]),
    ({"email": "nul\x00@example.com", "password": OK_PASSWORD}, ["email"]),
    ({"email": OK_EMAIL, "password": "short"}, ["password"]),
    ({"email": OK_EMAIL, "password": "1234567"}, ["password"]),
    ({"email": OK_EMAIL, "password": "p" * 129}, ["password"]),
    ({"email": OK_EMAIL, "password": 12345678}, ["password"]),
    ({"email": OK_EMAIL, "password": None}, ["password"]),
    ({"email": OK_EMAIL, "password": "pass\x00word123"}, ["password"]),
    ({"email": OK_EMAIL, "password": OK_PASSWORD, "name": "n" * 101}, ["name"]),
    ({"email": OK_EMAIL, "password": OK_PASSWORD, "name": 5}, ["name"]),
    ({"email": OK_EMAIL, "password": OK_PASSWORD, "name": "nul\x00"}, ["name"]),
    ({"email": OK_EMAIL, "password": OK_PASSWORD, "name": "\ud800"}, ["name"]),
    ({"email": OK_EMAIL, "password": OK_PASSWORD, "role": "admin"}, ["role"]),
    ({"email": OK_EMAIL, "password": OK_PASSWORD, "id": 1}, ["id"]),
]


@pytest.mark.parametrize(("body", "blamed"), REGISTER, ids=lambda v: None)
def test_registering_with_a_bad_body_is_a_400_naming_the_fields_and_creates_no_one(unchanged, body, blamed):
    assert_error(unchanged.client.post("/auth/register", json=body), 400, "validation_error", blamed)
    email = body.get("email")
    if isinstance(email, str) and "@" in email and "\x00" not in email and len(email) <= 254:
        assert unchanged.auth.login(email, OK_PASSWORD).status_code == 401


LOGIN = [
    ({}, ["email", "password"]),
    ({"email": OK_EMAIL}, ["password"]),
    ({"password": OK_PASSWORD}, ["email"]),
    ({"email": "", "password": OK_PASSWORD}, ["email"]),
    ({"email": OK_EMAIL, "password": ""}, ["password"]),
    ({"email": "e" * 255, "password": OK_PASSWORD}, ["email"]),
    ({"email": OK_EMAIL, "password": "p" * 129}, ["password"]),
    ({"email": 1, "password": OK_PASSWORD}, ["email"]),
    ({"email": OK_EMAIL, "password": True}, ["password"]),
    ({"email": "nul\x00@example.com", "password": OK_PASSWORD}, ["email"]),
    ({"email": OK_EMAIL, "password": OK_PASSWORD, "remember": True}, ["remember"]),
]


@pytest.mark.parametrize(("body", "blamed"), LOGIN, ids=lambda v: None)
def test_logging_in_with_a_bad_body_is_a_400_naming_the_fields(unchanged, body, blamed):
    assert_error(unchanged.client.post("/auth/login", json=body), 400, "validation_error", blamed)


TOPUP = [
    ({}, ["amount"]),
    ({"description": "no amount"}, ["amount"]),
    ({"amount": 10, "description": "d" * 501}, ["description"]),
    ({"amount": 10, "description": 5}, ["description"]),
    ({"amount": 10, "description": ["a"]}, ["description"]),
    ({"amount": 10, "description": "nul\x00"}, ["description"]),
    ({"amount": 10, "status": "success"}, ["status"]),
    ({"amount": 10, "user_id": 1}, ["user_id"]),
    ({"amount": 10, "currency": "EUR"}, ["currency"]),
    ({"amount": "ten", "extra": 1}, ["amount", "extra"]),
]


@pytest.mark.parametrize(("body", "blamed"), TOPUP, ids=lambda v: None)
def test_requesting_a_top_up_with_a_bad_body_is_a_400_naming_the_fields(unchanged, body, blamed):
    reply = unchanged.client.post("/transactions/topup", json=body, headers=unchanged.user)
    assert_error(reply, 400, "validation_error", blamed)


PAYMENT = [
    ({}, ["amount"]),
    ({"amount": 1, "description": "d" * 501}, ["description"]),
    ({"amount": 1, "reference": "r" * 101}, ["reference"]),
    ({"amount": 1, "reference": 17}, ["reference"]),
    ({"amount": 1, "reference": "\ud83d"}, ["reference"]),
    ({"amount": 1, "balance_snapshot": 100}, ["balance_snapshot"]),
    ({"amount": 1, "status": "success"}, ["status"]),
]


@pytest.mark.parametrize(("body", "blamed"), PAYMENT, ids=lambda v: None)
def test_paying_with_a_bad_body_is_a_400_naming_the_fields_and_moves_nothing(unchanged, body, blamed):
    reply = unchanged.client.post("/transactions/payment", json=body, headers=unchanged.user)
    assert_error(reply, 400, "validation_error", blamed)


PROCESS = [
    ({}, ["status"]),
    ({"status": "approved"}, ["status"]),
    ({"status": "SUCCESS"}, ["status"]),
    ({"status": "pending"}, ["status"]),
    ({"status": ""}, ["status"]),
    ({"status": True}, ["status"]),
    ({"status": None}, ["status"]),
    ({"admin_notes": "no status"}, ["status"]),
    ({"status": "success", "admin_notes": "n" * 501}, ["admin_notes"]),
    ({"status": "success", "admin_notes": 1}, ["admin_notes"]),
    ({"status": "success", "admin_notes": "nul\x00"}, ["admin_notes"]),
    ({"status": "success", "amount": 1000}, ["amount"]),
]


@pytest.mark.parametrize(("body", "blamed"), PROCESS, ids=lambda v: None)
def test_processing_with_a_bad_body_is_a_400_and_leaves_the_top_up_pending(unchanged, body, blamed):
    reply = unchanged.client.patch(f"/transactions/topup/{unchanged.pending}/process", json=body,
                                   headers=unchanged.admin)
    assert_error(reply, 400, "validation_error", blamed)


def test_text_is_trimmed_and_an_all_blank_name_is_no_name(client):
    reply = client.post("/auth/register", json={"email": "  trim@example.com ", "password": OK_PASSWORD,
                                                "name": "   "})
    assert reply.status_code == 201
    assert reply.get_json()["user"] | {"id": 0} == {"id": 0, "email": "trim@example.com", "name": None, "role": "user"}


def test_text_at_its_maximum_length_is_accepted(client, auth):
    _, user = auth.new_user()
    reply = client.post("/transactions/payment", json={"amount": 1, "description": "d" * 500, "reference": "r" * 100},
                        headers=user)
    assert reply.status_code == 402  # valid, merely unaffordable
    assert client.post("/transactions/topup", json={"amount": 1, "description": "d" * 500},
                       headers=user).status_code == 201


# --- bodies that are not a JSON object ----------------------------------------------------------------------------

NOT_AN_OBJECT = [
    ("application/json", b"[]"),
    ("application/json", b'[{"amount": 10}]'),
    ("application/json", b'"amount"'),
    ("application/json", b"42"),
    ("application/json", b"null"),
    ("application/json", b""),
    ("application/json", b"{"),
    ("application/json", b'{"amount": 10,}'),
    ("application/json", b"{'amount': 10}"),
    ("application/json", b'{"amount": NaN}'),
    ("application/json", b'{"amount": Infinity}'),
    ("application/json", b'{"amount": 10} trailing'),
    ("application/json", b'{"amount": "\xff\xfe"}'),
    ("application/json", b"[" * 30_000 + b"]" * 30_000),  # deeper than Python's recursion, within the size limit
    ("text/plain", b'{"amount": 10}'),
    ("application/x-www-form-urlencoded", b"amount=10"),
    (None, b'{"amount": 10}'),
]
ENDPOINTS = [("POST", "/auth/register"), ("POST", "/auth/login"), ("POST", "/transactions/topup"),
             ("POST", "/transactions/payment"), ("PATCH", "/transactions/topup/{pending}/process")]


@pytest.mark.parametrize(("content_type", "raw"), NOT_AN_OBJECT, ids=[f"{c}:{r[:20]!r}" for c, r in NOT_AN_OBJECT])
def test_a_body_that_is_not_a_json_object_is_a_400_at_every_endpoint_that_takes_one(unchanged, content_type, raw):
    for method, path in ENDPOINTS:
        headers = unchanged.admin if "process" in path else unchanged.user
        reply = unchanged.client.open(path.format(pending=unchanged.pending), method=method, data=raw,
                                      content_type=content_type, headers=headers)
        error = assert_error(reply, 400, "validation_error")
        assert "fields" not in error, (path, error)


@pytest.mark.parametrize(("raw", "twice"), [
    (b'{"amount": 1, "amount": 1000}', "amount"),
    (b'{"amount": 10, "email": "a@example.com", "password": "x", "email": "b@example.com"}', "email"),
    (b'{"amount": 10, "meta": {"note": 1, "note": 2}}', "note"),
], ids=["the amount twice", "another field twice", "twice in a nested object"])
def test_a_body_that_names_a_field_twice_is_a_400_that_says_which(unchanged, raw, twice):
    for method, path in ENDPOINTS:
        headers = unchanged.admin if "process" in path else unchanged.user
        reply = unchanged.client.open(path.format(pending=unchanged.pending), method=method, data=raw,
                                      content_type="application/json", headers=headers)
        error = assert_error(reply, 400, "validation_error")
        assert error["message"] == f"the body names {twice!r} more than once", (path, error)


# --- query strings and headers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "1e2", " 5", "²", "٣", "99999999999999999999"])
def test_a_limit_that_is_not_a_whole_number_from_1_to_100_is_a_400(unchanged, limit):
    reply = unchanged.client.get("/transactions", query_string={"limit": limit}, headers=unchanged.user)
    assert_error(reply, 400, "validation_error", ["limit"])


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "!!!", "é", "%00", cursor_of({"a": 1}), cursor_of([1, 2]), cursor_of([None, None]),
     cursor_of(["2026-01-01T00:00:00", "00000000-0000-4000-8000-000000000000"]),
     cursor_of(["0001-01-01T00:00:00+01:00", "00000000-0000-4000-8000-000000000000"]),
     cursor_of(["2026-01-01T00:00:00+00:00", "not-an-id\x00"]), cursor_of(["2026-01-01T00:00:00+00:00", None]),
     cursor_of(["yesterday", "00000000-0000-4000-8000-000000000000"]), cursor_of(["a", "b", "c"])],
    ids=["garbage", "punctuation", "non-ascii", "nul", "object", "numbers", "nulls", "naive time", "year one",
         "bad id", "no id", "not a time", "three parts"],
)
def test_a_cursor_this_api_did_not_write_is_a_400(unchanged, cursor):
    reply = unchanged.client.get("/transactions", query_string={"cursor": cursor}, headers=unchanged.user)
    assert_error(reply, 400, "validation_error", ["cursor"])


@pytest.mark.parametrize("key", ["", "   ", "k" * 256, "tab\there", "del\x7f", "caf\u00e9", "caf\u00c3\u00a9"],
                         ids=["empty", "blank", "256 chars", "tab", "control character", "latin-1 letter",
                              "utf-8 read as latin-1"])
def test_an_idempotency_key_that_is_not_1_to_255_printable_ascii_characters_is_a_400(unchanged, key):
    for endpoint in MONEY_ENDPOINTS:
        reply = unchanged.client.post(endpoint, json={"amount": 1}, headers={**unchanged.user, "Idempotency-Key": key})
        assert_error(reply, 400, "validation_error", ["Idempotency-Key"])


def test_an_idempotency_key_of_255_characters_is_accepted(client, auth):
    _, user = auth.new_user()
    assert client.post("/transactions/topup", json={"amount": 1},
                       headers={**user, "Idempotency-Key": "k" * 255}).status_code == 201
