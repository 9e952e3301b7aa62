"""Who may call what: anonymous callers, users and admins on every route, and every way a token can be bad."""
from __future__ import annotations

from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token

from tests.support.api import assert_error

ROLES = ["anonymous", "user", "admin"]

# method, path, body, expected status for (anonymous, user, admin); {pending}, {own} and {role} are filled in.
# The roles are tried in this order, so the admin (who may change things) goes last.
ROUTES = [
    ("POST", "/auth/register", {"email": "new-{role}@example.com", "password": "password123"}, (201, 201, 201)),
    ("POST", "/auth/login", {"email": "someone@example.com", "password": "password123"}, (200, 200, 200)),
    ("GET", "/balance", None, (401, 200, 200)),
    ("GET", "/transactions", None, (401, 200, 200)),
    ("GET", "/transactions/{own}", None, (401, 200, 404)),
    ("POST", "/transactions/topup", {"amount": 5}, (401, 201, 201)),
    ("POST", "/transactions/payment", {"amount": 1}, (401, 201, 201)),
    ("GET", "/transactions/topup/pending", None, (401, 403, 200)),
    ("PATCH", "/transactions/topup/{pending}/process", {"status": "success"}, (401, 403, 200)),
    ("GET", "/healthz", None, (200, 200, 200)),
]


@pytest.fixture
def world(client, auth):
    """A funded user with a pending top-up, and a funded admin; headers per role."""
    _, user = auth.new_user("someone@example.com")
    _, admin = auth.new_admin()
    auth.fund(user, admin, 10)
    _, other_admin = auth.new_admin()
    auth.fund(admin, other_admin, 10)  # four eyes: another admin approves an admin's own top-up
    pending = client.post("/transactions/topup", json={"amount": 7}, headers=user).get_json()["id"]
    own = client.get("/transactions", headers=user).get_json()["items"][-1]["id"]
    return {"headers": {"anonymous": {}, "user": user, "admin": admin}, "pending": pending, "own": own, "user": user}


@pytest.mark.parametrize(("method", "path", "body", "expected"), ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES])
def test_each_route_answers_each_role_as_the_table_says(client, world, method, path, body, expected):
    for role, status in zip(ROLES, expected):
        filled = {k: (v.format(role=role) if isinstance(v, str) else v) for k, v in (body or {}).items()} or None
        reply = client.open(path.format(**world), method=method, json=filled, headers=world["headers"][role])
        if status in (401, 403, 404):
            assert_error(reply, status, {401: "unauthorized", 403: "forbidden", 404: "not_found"}[status])
        else:
            assert reply.status_code == status, (role, reply.get_json())
        if status in (401, 403) and "process" in path:
            pending = client.get(f"/transactions/{world['pending']}", headers=world["user"]).get_json()
            assert pending["status"] == "pending", role
            assert client.get("/balance", headers=world["user"]).get_json()["balance"] == 10, role


@pytest.mark.parametrize(("method", "path"), [("POST", "/transactions/topup"), ("POST", "/transactions/payment"),
                                              ("PATCH", "/transactions/topup/x/process")])
def test_an_anonymous_caller_is_refused_before_the_body_is_read(client, method, path):
    assert_error(client.open(path, method=method, data="not json", content_type="text/plain"), 401, "unauthorized")


def test_a_user_is_refused_an_admin_route_before_the_body_is_read(client, world):
    reply = client.patch(f"/transactions/topup/{world['pending']}/process", data="[]", content_type="application/json",
                         headers=world["headers"]["user"])
    assert_error(reply, 403, "forbidden")


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def bad_tokens(app, user_id: int) -> dict[str, dict]:
    with app.app_context():
        expired = create_access_token(identity=str(user_id), additional_claims={"role": "user"},
                                      expires_delta=timedelta(seconds=-5))
        vanished = create_access_token(identity="999999", additional_claims={"role": "admin"})
        not_a_number = create_access_token(identity="alice", additional_claims={"role": "admin"})
    forged = pyjwt.encode({"sub": str(user_id), "role": "admin", "type": "access", "fresh": False,
                           "jti": "x", "iat": 1, "nbf": 1, "exp": 4102444800}, "another-secret-that-is-long-enough",
                          algorithm="HS256")
    unsigned = pyjwt.encode({"sub": str(user_id), "type": "access"}, None, algorithm="none")
    return {
        "no header": {},
        "empty bearer": {"Authorization": "Bearer "},
        "wrong scheme": {"Authorization": f"Basic {expired}"},
        "garbled": bearer("not.a.token"),
        "random text": bearer("hello"),
        "expired": bearer(expired),
        "signed with another key": bearer(forged),
        "unsigned": bearer(unsigned),
        "user that does not exist": bearer(vanished),
        "subject not a user id": bearer(not_a_number),
    }


KINDS = ["no header", "empty bearer", "wrong scheme", "garbled", "random text", "expired", "signed with another key",
         "unsigned", "user that does not exist", "subject not a user id"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_or_bad_token_is_a_401_with_the_json_error_body(app, client, auth, kind):
    user_id, _ = auth.new_user()
    headers = bad_tokens(app, user_id)[kind]
    for method, path in (("GET", "/balance"), ("POST", "/transactions/payment"),
                         ("GET", "/transactions/topup/pending")):
        assert_error(client.open(path, method=method, json={"amount": 1}, headers=headers), 401, "unauthorized")


def test_an_expired_token_says_so(app, client, auth):
    user_id, _ = auth.new_user()
    error = assert_error(client.get("/balance", headers=bad_tokens(app, user_id)["expired"]), 401, "unauthorized")
    assert "expired" in error["message"]


def test_a_token_claiming_admin_for_a_user_does_not_make_them_one(app, client, auth):
    user_id, _ = auth.new_user()
    with app.app_context():
        token = create_access_token(identity=str(user_id), additional_claims={"role": "admin"})
    assert_error(client.get("/transactions/topup/pending", headers=bearer(token)), 403, "forbidden")


def test_a_promoted_user_can_use_admin_routes_with_their_next_request(app, client, auth, runner):
    _, user = auth.new_user("promote-me@example.com")
    assert client.get("/transactions/topup/pending", headers=user).status_code == 403
    assert runner.invoke(args=["create-admin", "promote-me@example.com"]).exit_code == 0
    assert client.get("/transactions/topup/pending", headers=user).status_code == 200


@pytest.mark.parametrize("page_of, status", [("mine", 200), ("another", 401), ("garbage", 401)])
def test_a_pages_read_that_says_whose_page_it_is_is_answered_only_for_that_person(auth, page_of, status):
    """The pages read with the browser's cookie, which another login may have replaced since the page was drawn."""
    ann_id, ann = auth.new_user()
    viewer = {"mine": str(ann_id), "another": str(ann_id + 1), "garbage": "ann"}[page_of]
    reply = auth.client.get("/transactions", headers={**ann, "X-Balance-Viewer": viewer})
    assert reply.status_code == status
    if status == 401:
        assert reply.get_json()["error"]["message"].startswith("another login: ")
