"""``/signup``, ``/login``, ``/logout``: the API's accounts, with the token in an HttpOnly, SameSite=Lax cookie.

Page scripts never see the token: the socket and the page's reads send the cookie.
Before log-in the forms carry a session CSRF token (``csrf``); after, the JWT's own.
"""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request
from flask_jwt_extended import set_access_cookies, unset_jwt_cookies

from ..auth import issue_token
from ..domain.errors import AuthenticationFailed, EmailTaken, ValidationFailed
from ..extensions import limiter
from ..services import accounts
from . import csrf, forms
from .guard import login_required
from .return_path import safe_next

bp = Blueprint("auth_pages", __name__)


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _logged_in(user, target: str | None):
    response = redirect(target or ("/admin/topups" if user.is_admin else "/"), 303)
    set_access_cookies(response, issue_token(user))
    csrf.rotate()
    return response


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def signup():
    """Create an account with an empty wallet, then log in."""
    if request.method == "GET":
        return render_template("auth/signup.html", form={}, errors={})
    csrf.check()
    kept = {"email": request.form.get("email", ""), "name": request.form.get("name", "")}
    try:
        data = forms.signup(request.form)
        user = accounts.register(data["email"], data["password"], data.get("name"))
    except EmailTaken:
        errors = {"email": "An account with this email already exists. Log in instead?"}
        return render_template("auth/signup.html", form=kept, errors=errors), 422
    except ValidationFailed as error:
        return render_template("auth/signup.html", form=kept, errors=error.fields), 422
    flash("Welcome! Your wallet is open; request a top-up to get started.", "success")
    return _logged_in(user, None)


@bp.route("/login", methods=["GET", "POST"])
@limiter.shared_limit(_login_limit, scope="login", methods=["POST"])  # one budget with POST /auth/login
def login():
    """Log in with email and password (the same accounts as the API)."""
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("auth/login.html", email="", next=target, error=None)
    csrf.check()
    email = request.form.get("email", "")
    try:
        user = accounts.authenticate(email, request.form.get("password", ""))
    except AuthenticationFailed:
        return render_template("auth/login.html", email=email, next=target,
                               error="Invalid email or password."), 422
    return _logged_in(user, target)


@bp.post("/logout")
@login_required
def logout():
    """Drop the login cookie; the form's CSRF token means no other site can log you out."""
    flash("You are logged out.", "info")
    response = redirect("/login", 303)
    unset_jwt_cookies(response)
    return response
