"""A socket that goes away must not take the database session of whoever noticed it."""
from __future__ import annotations

from flask import request

from balance.extensions import db
from balance.models import User
from balance.realtime.sockets import BalanceNamespace
from balance.services import accounts


def test_a_disconnect_handled_inside_an_http_request_leaves_that_requests_session_usable(app):
    """engine.io can run the disconnect handler in the greenlet of the request whose emit found the socket dead."""
    with app.app_context():
        user_id = accounts.register("gone@example.com", "password123").id
    gateway = app.extensions["balance.gateway"]
    with app.test_request_context("/transactions/topup", method="POST"):
        loaded = db.session.get(User, user_id)
        gateway.attach("dead-sid", user_id, False)
        request.sid = "dead-sid"
        BalanceNamespace("/balance").on_disconnect("transport close")
        assert loaded in db.session
        assert loaded.email == "gone@example.com"
        assert "dead-sid" not in gateway.sockets
