"""CSRF for the forms shown before there is a login cookie (log in, sign up): a token kept in the signed session.

Once logged in, forms carry flask-jwt-extended's double-submit token instead (see
``guard``). A mismatch raises the same ``CSRFError``, so ``balance.errors`` answers
both the same way.
"""
from __future__ import annotations

import hmac
import secrets

from flask import request, session
from flask_jwt_extended.exceptions import CSRFError

FIELD = "csrf_token"
_KEY = "csrf"


def session_token() -> str:
    token = session.get(_KEY)
    if not token:
        token = session[_KEY] = secrets.token_urlsafe(32)
    return token


def check() -> None:
    """Refuse a form whose token is not this session's."""
    expected = session.get(_KEY)
    sent = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(str(expected), sent):
        raise CSRFError("Missing or wrong CSRF token")


def rotate() -> None:
    """A new token after logging in, so a token seen before cannot be replayed."""
    session.pop(_KEY, None)
