"""Who is calling: JWT set-up, and the decorators entrypoints use to require a user or an admin.

Tokens carry the user id as subject and the role as a claim; the user is read from
the database on every request (one indexed Core ``SELECT``, the request's first
statement: ``database.first_read``), so a deleted user's token stops working at once
and a changed role applies to the next request. A request that changes a wallet first
waits for one of its caller's places (``balance.caller_gate``), so that one account's
stuck changes cannot take every connection of the pool.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from flask import current_app, request
from flask_jwt_extended import create_access_token, current_user, decode_token, verify_jwt_in_request
from sqlalchemy import bindparam, select

from . import caller_gate
from .database import first_read
from .domain.errors import AuthenticationFailed, Forbidden
from .extensions import jwt
from .models import User

PAGE_VIEWER_HEADER = "X-Balance-Viewer"  # whose page sent the request (the pages' scripts say so)
_users = User.__table__
_CALLER = select(_users.c.id, _users.c.email, _users.c.name, _users.c.role).where(_users.c.id == bindparam("uid"))


@dataclass(frozen=True)
class Caller:
    """The authenticated user as read for this request: plain values, nothing a commit can expire or lazy-load."""

    id: int
    email: str
    name: str | None
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def init_app(app) -> None:
    app.config.setdefault("JWT_TOKEN_LOCATION", ["headers", "cookies"])
    app.config.setdefault("JWT_ACCESS_COOKIE_NAME", "balance_access")
    app.config.setdefault("JWT_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("JWT_COOKIE_SECURE", app.config.get("ENV_NAME") == "production")
    app.config.setdefault("JWT_COOKIE_CSRF_PROTECT", True)
    app.config.setdefault("JWT_CSRF_CHECK_FORM", True)
    jwt.init_app(app)


@jwt.user_lookup_loader
def _load_user(_header, payload) -> Caller | None:
    try:
        user_id = int(payload["sub"])
    except (KeyError, ValueError, TypeError):
        return None
    page_of = request.headers.get(PAGE_VIEWER_HEADER)
    if page_of is not None and page_of != str(user_id):
        # a page's script, reading with the browser's cookie, which now belongs to someone else (logged in since)
        raise AuthenticationFailed("another login: this page belongs to another account than the one logged in; "
                                   "reload it")
    caller_gate.enter_for_request(user_id)  # before the request takes a database connection
    return _read_caller(user_id)


def _read_caller(user_id: int) -> Caller | None:
    rows = first_read(_CALLER, {"uid": user_id})
    return Caller(*rows[0]) if rows else None


def cookie_viewer() -> tuple[Caller, str | None] | None:
    """Who the login cookie names, and its form token, for a page no guard ran for (a 404 from the router): shown
    in the header only, so anything wrong with the cookie or the read just means no one is shown."""
    raw = request.cookies.get(current_app.config["JWT_ACCESS_COOKIE_NAME"])
    if not raw:
        return None
    try:
        claims = decode_token(raw)
        caller = _read_caller(int(claims["sub"])) if claims.get("type") == "access" else None
    except Exception:  # noqa: BLE001 - expired, forged, the database away: a page without a name in its header
        return None
    return (caller, claims.get("csrf")) if caller else None


def issue_token(user) -> str:
    return create_access_token(identity=str(user.id), additional_claims={"role": user.role})


def user_required(view):
    """The caller must present a valid access token (header, or cookie with CSRF for forms)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        verify_jwt_in_request()
        if current_user is None:
            raise AuthenticationFailed("this account no longer exists")
        return view(*args, **kwargs)

    return wrapper


def admin_required(view):
    """The caller must be an admin; a user gets 403."""

    @wraps(view)
    @user_required
    def wrapper(*args, **kwargs):
        if not current_user.is_admin:
            raise Forbidden("admins only")
        return view(*args, **kwargs)

    return wrapper
