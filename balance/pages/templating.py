"""What every page template can use: money in the configured currency, times, labels, the viewer, the form token.

Also the headers every page answers with: a strict Content-Security-Policy (scripts
and styles only from our own files, so injected markup cannot run), and no caching
of pages that show a balance.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from flask import current_app, g

from ..domain.money import CURRENCY_SYMBOLS, format_money
from . import csrf

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

TYPE_LABELS = {"topup": "Top-up", "payment": "Payment"}
STATUS_LABELS = {
    ("topup", "pending"): "Pending",
    ("topup", "success"): "Approved",
    ("topup", "failed"): "Rejected",
    ("payment", "pending"): "Processing",
    ("payment", "success"): "Paid",
    ("payment", "failed"): "Failed",
}
REASONS = {"insufficient_balance": "insufficient balance", "rejected": "rejected"}


def money(minor: int | None) -> str:
    if minor is None:
        return "—"
    return format_money(minor, current_app.config["CURRENCY"])


def signed_money(tx) -> str:
    """``+$50.00`` for money in, ``-$12.00`` for money out."""
    return ("+" if tx.type == "topup" else "-") + money(tx.amount)


def when(at: datetime | None) -> str:
    """``2 Jan 2025, 13:04 UTC``: the same text the page scripts write for live rows."""
    if at is None:
        return "—"
    return f"{at.day} {at:%b %Y}, {at:%H:%M} UTC"


def iso(at: datetime | None) -> str:
    return at.isoformat() if at else ""


def status_label(tx) -> str:
    return STATUS_LABELS.get((tx.type, tx.status), tx.status)


def reason(text: str | None) -> str:
    return REASONS.get(text or "", text or "")


def new_key() -> str:
    """An Idempotency-Key for one rendered form: its double click or retry does the thing once."""
    return str(uuid.uuid4())


def csrf_token() -> str:
    """The logged-in viewer's double-submit token, or the session's before log-in."""
    return g.get("csrf_token") or csrf.session_token()


def socket_transports() -> str:
    """The transports the Socket.IO server accepts, so the page's client asks for the same."""
    server = getattr(current_app.extensions.get("socketio"), "server", None)
    chosen = getattr(getattr(server, "eio", None), "transports", None) or ["polling", "websocket"]
    return ",".join(chosen)


def _context() -> dict:
    code = current_app.config["CURRENCY"]
    return {"viewer": g.get("viewer"), "currency_code": code, "currency_symbol": CURRENCY_SYMBOLS.get(code, "")}


def _headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app) -> None:
    for f in (money, signed_money, when, iso, status_label, reason):
        app.add_template_filter(f)
    for f in (new_key, csrf_token, socket_transports):
        app.add_template_global(f)
    app.jinja_env.globals["TYPE_LABELS"] = TYPE_LABELS
    app.context_processor(_context)
    app.after_request(_headers)
