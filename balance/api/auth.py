"""``/auth``: register and log in."""
from __future__ import annotations

from flask import Blueprint, current_app

from .. import wire
from ..auth import issue_token
from ..extensions import limiter
from ..services import accounts
from .body import json_object
from .schemas import LoginSchema, RegisterSchema, load

bp = Blueprint("auth_api", __name__, url_prefix="/auth")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.post("/register")
def register():
    """Create an account with an empty wallet."""
    data = load(RegisterSchema, json_object())
    user = accounts.register(data["email"], data["password"], data.get("name"))
    return {"user": wire.user(user)}, 201


@bp.post("/login")
@limiter.shared_limit(_login_limit, scope="login")  # one budget with the login page's form: the same passwords
def login():
    """Exchange email and password for a bearer token."""
    data = load(LoginSchema, json_object())
    user = accounts.authenticate(data["email"], data["password"])
    expires = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return {
        "access_token": issue_token(user),
        "token_type": "Bearer",
        "expires_in": int(expires.total_seconds()),
        "user": wire.user(user),
    }
