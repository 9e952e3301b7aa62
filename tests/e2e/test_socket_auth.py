"""Who may open a ``/balance`` socket: an access token, once, at connect; everything else gets ``connect_error``.

The token may come in the ``auth`` object (the seed's hook), the ``token`` query
parameter or the login cookie, with or without a ``Bearer `` prefix. Tokens are made
here the way an attacker or a confused client would: garbage, signed with another
key, expired, a refresh token, no signature at all, a user that does not exist.
"""
from __future__ import annotations

import gc
import time
import uuid
from urllib.parse import quote

import jwt
import pytest
import socketio
from flask import Flask
from flask_jwt_extended import JWTManager, create_refresh_token

from balance.realtime.gateway import ORPHAN_GRACE
from balance.realtime.sockets import EXPIRY_SWEEP
from tests.e2e.clients import Tab
from tests.e2e.servers import JWT_SECRET

pytestmark = pytest.mark.multiprocess


def claims(user_id, **overrides) -> dict:
    now = int(time.time())
    return {"sub": str(user_id), "iat": now, "nbf": now, "exp": now + 600, "jti": str(uuid.uuid4()),
            "type": "access", "fresh": False, "role": "user", **overrides}


def signed(payload: dict, key: str = JWT_SECRET) -> str:
    return jwt.encode(payload, key, algorithm="HS256")


def refresh_token(user_id) -> str:
    """A genuine refresh token, made by flask-jwt-extended with the server's own secret."""
    app = Flask(__name__)
    app.config["JWT_SECRET_KEY"] = JWT_SECRET
    JWTManager(app)
    with app.app_context():
        return create_refresh_token(identity=str(user_id))


def expired(user_id) -> str:
    now = int(time.time())
    return signed(claims(user_id, iat=now - 7200, nbf=now - 7200, exp=now - 60))


@pytest.fixture(scope="module")
def someone(cluster):
    return cluster.api.new_user("auth")


REFUSED = {
    "no auth at all": lambda u: None,
    "no token": lambda u: {},
    "empty token": lambda u: {"token": ""},
    "token not a string": lambda u: {"token": 12345},
    "garbage": lambda u: {"token": "not-a-jwt"},
    "bearer garbage": lambda u: {"token": "Bearer not.a.jwt"},
    "signed with another key": lambda u: {"token": signed(claims(u.id), "another-secret-of-sufficient-length-0123")},
    "expired": lambda u: {"token": expired(u.id)},
    "refresh token": lambda u: {"token": refresh_token(u.id)},
    "unsigned (alg none)": lambda u: {"token": jwt.encode(claims(u.id), None, algorithm="none")},
    "unknown user": lambda u: {"token": signed(claims(987654321))},
    "subject not a user id": lambda u: {"token": signed(claims("admin"))},
    "tampered signature": lambda u: {"token": u.token.rsplit(".", 1)[0] + ".AAAA"},
}


@pytest.mark.parametrize("make_auth", REFUSED.values(), ids=REFUSED.keys())
def test_a_socket_without_a_valid_access_token_is_refused_with_connect_error(cluster, someone, make_auth):
    tab = Tab("refused")
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            tab.connect(cluster.url, auth=make_auth(someone))
        assert str((tab.refusal or {}).get("message")).startswith("unauthorized"), \
            f"connect_error should say why: {tab.refusal}"
        assert tab.events == []
    finally:
        tab.close()


def test_an_expired_token_in_the_query_string_is_refused_too(cluster, someone):
    tab = Tab("refused")
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            tab.connect(cluster.url, query="?token=" + quote(expired(someone.id)))
        assert tab.refusal == {"message": "unauthorized: invalid or expired token"}
    finally:
        tab.close()


ACCEPTED = {
    "auth token": lambda u: {"auth": {"token": u.token}},
    "auth token with Bearer prefix": lambda u: {"auth": {"token": f"Bearer {u.token}"}},
    "query string token": lambda u: {"query": f"?token={u.token}"},
    "query string token with Bearer prefix": lambda u: {"query": "?token=" + quote(f"Bearer {u.token}")},
    "login cookie": lambda u: {"headers": {"Cookie": f"balance_access={u.token}"}},
}


@pytest.mark.parametrize("where", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_an_access_token_is_accepted_from_auth_query_string_or_cookie_with_or_without_bearer(cluster, someone, where):
    tab = Tab("accepted")
    try:
        tab.connect(cluster.url, **where(someone))
        tab.wait_for("balance_initial")
        assert tab.events == [("balance_initial", {"balance": 0, "seq": 0})]
    finally:
        tab.close()


@pytest.mark.parametrize("page_of", ["another user", "the user as text", "yes"])
def test_a_page_that_says_it_is_someone_elses_is_refused_with_a_reason_the_page_can_act_on(cluster, someone, page_of):
    """The pages connect with the cookie, which may have become another person's since the page was rendered."""
    other = {"another user": someone.id + 1_000_000, "the user as text": str(someone.id), "yes": True}[page_of]
    tab = Tab("another login")
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            tab.connect(cluster.url, auth={"user_id": other}, headers={"Cookie": f"balance_access={someone.token}"})
        assert tab.refusal["message"].startswith("another login: "), tab.refusal
        assert tab.events == []
    finally:
        tab.close()


def test_a_page_that_says_it_is_the_cookies_users_connects(cluster, someone):
    tab = Tab("same login")
    try:
        tab.connect(cluster.url, auth={"user_id": someone.id}, headers={"Cookie": f"balance_access={someone.token}"})
        tab.wait_for("balance_initial")
    finally:
        tab.close()


def test_a_page_on_another_origin_cannot_open_a_socket_even_with_the_login_cookie(cluster, someone):
    tab = Tab("cross-site", websocket_extra_options={"origin": "https://evil.example.com"})
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            tab.connect(cluster.url, headers={"Cookie": f"balance_access={someone.token}"})
    finally:
        tab.close()


def test_a_socket_message_over_the_request_size_limit_closes_that_socket_and_no_other(cluster, someone):
    big, small, big_socket = Tab("sends too much"), Tab("sends a little"), None
    try:
        for tab in (big, small):
            tab.connect(cluster.url, someone.token)
            tab.wait_for("balance_initial")
        small.client.call("get_current_balance", None, namespace="/balance", timeout=10)
        big_socket = big.client.eio.ws.sock  # the server will close the connection; the client leaves this unclosed
        big.client.emit("get_current_balance", {"since_seq": 0, "padding": "x" * 70_000}, namespace="/balance")
        deadline = time.monotonic() + 10
        while big.client.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not big.client.connected, "the server closed the socket that sent 70 KB"
        assert small.client.call("get_current_balance", None, namespace="/balance", timeout=10) == \
            {"balance": 0, "seq": 0}
    finally:
        big.close()
        small.close()
        if big_socket is not None:
            big_socket.close()
        gc.collect()  # a socket left open shows here, in this test, not in whichever test collects it later


def test_a_socket_is_closed_by_the_server_when_its_token_expires_and_no_other_with_it(cluster, someone):
    """Authorized once, at connect, but for no longer than its token: an ended login stops receiving."""
    short, long_ = Tab("token ends in 2 s"), Tab("token for 10 min")
    try:
        now = int(time.time())
        short.connect(cluster.url, signed(claims(someone.id, exp=now + 2)))
        long_.connect(cluster.url, someone.token)
        for tab in (short, long_):
            tab.wait_for("balance_initial")
        deadline = time.monotonic() + 15
        while short.client.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not short.client.connected, "closed at its token's expiry (found by a sweep every 5 s)"
        assert time.time() >= now + 2, "not before it"
        assert short.events[-1] == ("error", {"message": "login expired: log in again, or connect with a new token"}), \
            "told why first, for clients that do not reconnect after a server's disconnect"
        # the same sweep lets go of sockets whose connection is gone: past its grace, a live one is not among them
        time.sleep(max(0.0, now + ORPHAN_GRACE + EXPIRY_SWEEP + 1 - time.time()))
        assert long_.client.connected
        assert long_.client.call("get_current_balance", None, namespace="/balance", timeout=10) == \
            {"balance": 0, "seq": 0}
    finally:
        short.close()
        long_.close()
