"""Where a browser sent to log in comes back to afterwards: the ``next`` of ``/login``, and only ever this site.

A page asked for without a login comes back to itself. A form sent after the login
ended (it lasts ``JWT_ACCESS_TOKEN_SECONDS``; a page left open longer) was not carried
out: the browser is told so and comes back to the page the form was on (this site's
``Referer``; the pages send ``Referrer-Policy: same-origin``), if that page can be asked
for again. Nothing is replayed: sending a money form again is the user's decision.
"""
from __future__ import annotations

from urllib.parse import quote, urlsplit

from flask import current_app, flash, redirect, request
from flask_jwt_extended import unset_jwt_cookies
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

LOGIN_ENDED = "Your login had ended before that form was sent, so nothing was done. Log in and send it again."
LONGEST = 1000  # characters; a longer way back would make /login's own address too long for the server


def safe_next(target: str | None) -> str | None:
    """Only a path on this site, so the log-in form cannot be used to send someone elsewhere.

    Control characters are refused too: browsers drop tabs and newlines from URLs, so
    ``/\t/evil.example`` would become ``//evil.example``.
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in target) or len(target) > LONGEST:
        return None
    return target


def to_login():
    """Send the browser to log in (dropping a stale login cookie), with the way back if there is one."""
    back = None
    if request.method in ("GET", "HEAD"):
        if request.path != "/login":
            back = safe_next(request.full_path.rstrip("?"))
    elif _had_a_login():
        if request.endpoint == "auth_pages.logout":
            flash("You are logged out.", "info")
        else:
            back = _referring_page()
            flash(LOGIN_ENDED, "info")
    response = redirect("/login" + ("?next=" + quote(back, safe="") if back else ""), 303)
    unset_jwt_cookies(response)
    return response


def _had_a_login() -> bool:
    """The request carried a login cookie (ended, or otherwise unusable): not a visitor, nor another site's form
    (the cookie is SameSite=Lax, so a cross-site POST arrives without it)."""
    return bool(request.cookies.get(current_app.config["JWT_ACCESS_COOKIE_NAME"]))


def _referring_page() -> str | None:
    """The page of this site that sent this request, if a browser can ask for it again (GET)."""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc != request.host or referrer.scheme not in ("http", "https"):
        return None  # another site, or this one behind a proxy that rewrites Host: no way back, safely
    path = safe_next(referrer.path + (f"?{referrer.query}" if referrer.query else ""))
    if path is None:
        return None
    try:
        current_app.url_map.bind(request.host).match(referrer.path, method="GET")
    except RequestRedirect:
        pass  # a page, under an address that redirects to it
    except HTTPException:  # a form's own address (POST only), or no page at all
        return None
    return path
