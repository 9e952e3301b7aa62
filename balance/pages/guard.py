"""Who may see a page: the login cookie (never a header), checked with its CSRF token on every state change.

A missing or expired cookie ends in ``balance.errors`` (a redirect to /login for a
browser); a user on an admin page gets the 403 page. The viewer and the form token
are kept on ``g`` for the templates.
"""
from __future__ import annotations

from functools import wraps

from flask import g
from flask_jwt_extended import current_user, get_jwt, verify_jwt_in_request

from ..domain.errors import Forbidden


def _verify() -> None:
    verify_jwt_in_request(locations=["cookies"])
    g.viewer = current_user._get_current_object()
    g.csrf_token = get_jwt().get("csrf")


def login_required(view):
    """The page needs a logged-in user (and, for POST, the form's CSRF token)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        _verify()
        return view(*args, **kwargs)

    return wrapper


def admin_required(view):
    """The page is for admins: a visitor goes to log in, a user gets 403."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        _verify()
        if not g.viewer.is_admin:
            raise Forbidden("This page is for admins only.")
        return view(*args, **kwargs)

    return wrapper
