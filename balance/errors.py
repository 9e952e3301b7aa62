"""Every error answered in one place: JSON for API clients, a page for browsers.

Named domain errors map to statuses here; anything unexpected is logged and
answered with a generic 500 that leaks nothing.
"""
from __future__ import annotations

import logging
import time

from flask import g, render_template, request
from flask_jwt_extended.exceptions import CSRFError
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from .auth import cookie_viewer
from .caller_gate import SAFE_METHODS
from .database import gave_up_waiting, outcome_unknown
from .domain import errors as e
from .extensions import jwt, limiter
from .pages.return_path import to_login

log = logging.getLogger(__name__)

STATUS = {
    e.ValidationFailed: 400,
    e.AuthenticationFailed: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.IdempotencyKeyReused: 422,
    e.InsufficientFunds: 402,
    e.LedgerError: 409,
    e.ServiceBusy: 503,
}

API_PREFIXES = ("/auth/", "/balance", "/transactions", "/api/")


def status_of(error: e.BalanceError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def wants_html() -> bool:
    """Browsers asking for a page get a page; API clients (and anything under an API path) get JSON."""
    if request.path.startswith(API_PREFIXES):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def body(code: str, message: str, fields: dict | None = None, **extra) -> dict:
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    error.update(extra)
    return {"error": error}


def respond(status: int, code: str, message: str, fields: dict | None = None, **extra):
    if wants_html():
        if status in (400, 404, 405) and request.method in ("GET", "HEAD") and "viewer" not in g:
            # refused before any guard ran (the router): still the logged-in person's header, not "Log in"
            g.viewer, g.csrf_token = cookie_viewer() or (None, None)
        return error_page(status, code, message), status
    return body(code, message, fields, **extra), status


def error_page(status: int, code: str, message: str, headline: str | None = None) -> str:
    """The error page; after a 503 (busy, the database away) a keyed form comes with a button that sends it again
    as it was, key included: what the person typed is not lost, and it is done at most once."""
    resend = None
    if status == 503 and request.method == "POST" and "idempotency_key" in request.form:
        resend = list(request.form.items(multi=True))
    return render_template("error.html", status=status, code=code, message=message, headline=headline,
                           resend=resend, resend_to=request.full_path.rstrip("?"))


def init_app(app) -> None:
    @app.errorhandler(e.BalanceError)
    def _domain(error: e.BalanceError):
        extra = {}
        if isinstance(error, e.AlreadyProcessed):
            extra = {"current_status": error.details.get("status")}
        answer = respond(status_of(error), error.code, error.message, error.fields, **extra)
        return (*answer, {"Retry-After": "1"}) if isinstance(error, e.ServiceBusy) else answer

    @app.errorhandler(RateLimitExceeded)
    def _limited(error):
        page, status = respond(429, "rate_limited", f"too many attempts: {error.description}; try again later")
        return page, status, {"Retry-After": str(_seconds_to_reset())}

    def _seconds_to_reset() -> int:
        """Until the breached limit's window ends (reading it asks the limiter's storage again: a storage that
        failed since is no reason to turn the 429 into a 500)."""
        try:
            return max(1, int(limiter.current_limit.reset_at - time.time()))
        except Exception:  # noqa: BLE001 - no limit, or its storage unreachable: a minute, the usual window
            return 60

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(error):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return respond(413, "request_too_large", f"the request body is larger than the {limit} bytes accepted")

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        """Werkzeug's status and headers (a 405's ``Allow``), our body."""
        code = (error.name or "error").lower().replace(" ", "_")
        message = error.description or error.name
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            message = (f"{request.method} is not allowed here; "
                       f"this address takes {', '.join(sorted(set(error.valid_methods) - {'HEAD', 'OPTIONS'}))}")
        page, status = respond(error.code or 500, code, message)
        return page, status, [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return respond(500, "internal_error", "something went wrong on our side")

    @app.errorhandler(DBAPIError)
    def _database(error: DBAPIError):
        """A connection the database dropped (a restart): the pool has already let go of every connection of that
        age (SQLAlchemy invalidates it on a disconnect), so trying again works. The transaction was rolled back
        unless the connection died with its COMMIT on the way: clients retry changes with their idempotency key.
        The same for the database not answering at all (down, restarting, refusing connections): an
        ``OperationalError`` is the driver saying the database could not do it now, not that the request was bad."""
        if not (error.connection_invalidated or isinstance(error, OperationalError)):
            return _unexpected(error)
        if request.method not in SAFE_METHODS and outcome_unknown(error):
            return _unconfirmed(error)
        if gave_up_waiting(error):
            log.warning("database statement timed out on %s %s: %s", request.method, request.path, error.orig)
            message = "the database did not answer in time; please try again"
        elif error.connection_invalidated:
            log.warning("database connection lost on %s %s: %s", request.method, request.path, error.orig)
            message = "the database connection was lost; please try again"
        elif getattr(error.orig, "sqlstate", None):  # the server's own refusal (a deadlock, say): rolled back
            log.warning("database refused %s %s: %s", request.method, request.path, error.orig)
            message = "the database could not do this right now; please try again"
        else:  # no connection to begin with: refused, or a new one timed out
            log.warning("database unreachable on %s %s: %s", request.method, request.path, error.orig)
            message = "the database cannot be reached right now; please try again"
        page, status = respond(503, "database_unavailable", message)
        return page, status, {"Retry-After": "1"}

    def _unconfirmed(error: DBAPIError):
        """A change whose connection went silent or was lost after it was sent: its COMMIT may have been made.
        "Try again" would then make it twice; the same request again (same Idempotency-Key) is safe, and a page
        offers exactly that: its own form, sent again as it was."""
        log.warning("database answer lost on %s %s, outcome unknown: %s", request.method, request.path, error.orig)
        message = ("the database did not confirm this change in time, so it may or may not have been made; "
                   "send the same request again (same Idempotency-Key) to find out: it is never made twice")
        if not wants_html():
            return body("database_unavailable", message, outcome="unknown"), 503, {"Retry-After": "1"}
        keyed = "idempotency_key" in request.form
        page = error_page(503, "database_unavailable", headline="Not confirmed",
                          message="The database did not confirm this in time, so it may or may not have gone through."
                          + ("" if keyed else " Check the page before you try again."))
        return page, 503, {"Retry-After": "1"}

    @app.errorhandler(PoolTimeout)
    def _pool_exhausted(error: PoolTimeout):
        """Every connection of the worker's pool stayed taken for the pool's timeout: the worker is overloaded, the
        request did nothing; it is the server's state, not the request, so a 503 to retry, not a 500."""
        log.warning("no database connection free on %s %s: %s", request.method, request.path, error)
        page, status = respond(503, "database_unavailable", "the service is busy; please try again")
        return page, status, {"Retry-After": "1"}

    def _unauthorized(message: str):
        if wants_html():
            return to_login()
        return respond(401, "unauthorized", message)

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError):
        # A page form without its token is refused, not sent to log in: the user is logged in.
        if wants_html():
            return respond(400, "csrf_failed", "This form has expired or did not come from this site. "
                                              "Go back, reload the page and try again.")
        return _unauthorized(f"authentication required: {error}")

    jwt.unauthorized_loader(lambda msg: _unauthorized(f"authentication required: {msg}"))
    jwt.invalid_token_loader(lambda msg: _unauthorized(f"invalid token: {msg}"))
    jwt.expired_token_loader(lambda _h, _p: _unauthorized("the token has expired; log in again"))
    jwt.user_lookup_error_loader(lambda _h, _p: _unauthorized("this account no longer exists"))
