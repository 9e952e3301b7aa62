"""``/``: a user's wallet (live balance, history, top-up form, rooms), and the forms it posts.

Each form carries an Idempotency-Key made when the page was rendered, so a double
click or a browser retry does the thing once. After a POST the page redirects
(so reloading never re-posts) and says what happened in a flash message.
"""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from ..caller_gate import locks_a_wallet
from ..domain.errors import BalanceError, IdempotencyKeyReused, ValidationFailed
from ..services import booking, dashboard_views, wallet
from . import forms
from .guard import login_required
from .templating import money

bp = Blueprint("dashboard", __name__)

PAGE_SIZE = 10


def _refused(what: str, error: BalanceError) -> str:
    """One wording for a form refused as a whole (its key, not one of its fields), on every form of the page."""
    return f"{what}: {error.message}."


def _render(status: int = 200, topup: dict | None = None, errors: dict | None = None):
    view = dashboard_views.dashboard(g.viewer.id, PAGE_SIZE, request.args.get("cursor") or None)
    return render_template("dashboard/index.html", view=view, cursor=request.args.get("cursor"),
                           topup=topup or {}, errors=errors or {}, page_size=PAGE_SIZE), status


@bp.get("/")
@login_required
def index():
    """The wallet: balance (live after first paint), transactions newest first, top-up and booking forms."""
    return _render()


@bp.post("/topup")
@login_required
def topup():
    """Ask an admin for a top-up; it shows as pending until they decide.

    A refused form comes back with what was typed but a fresh Idempotency-Key: nothing
    was done under the old one, and a bad key put back would fail every resend.
    """
    kept = {k: request.form.get(k, "") for k in ("amount", "description")}
    try:
        data = forms.topup(request.form)
    except ValidationFailed as error:
        return _render(422, kept, error.fields or {"amount": error.message})
    try:
        key, print_ = forms.keyed(request.form, "page:topup", data)
        wallet.request_topup(wallet.RequestTopup(g.viewer.id, data["amount"], data["description"], key, print_))
    except ValidationFailed as error:  # the key, which belongs to the form and not to a field
        return _render(422, kept, {"form": _refused("Top-up not requested", error)})
    except IdempotencyKeyReused:
        return _render(422, kept, {"form": "This form was already sent with other values. Check them and send again."})
    flash(f"Top-up of {money(data['amount'])} requested. An admin will review it.", "success")
    return redirect(url_for(".index"), 303)


@bp.post("/book")
@locks_a_wallet
@login_required
def book():
    """Book a room from the catalogue: pay its price once, however often the button is pressed."""
    try:
        done = booking.book(g.viewer.id, request.form.get("room", ""), request.form.get("idempotency_key"))
    except (ValidationFailed, IdempotencyKeyReused) as error:
        flash(_refused("Not booked", error), "error")
        return redirect(url_for(".index"), 303)
    room, result = done.room, done.result
    if result.insufficient:
        short = result.insufficient
        flash(f"Not booked: {room.name} costs {money(short['required'])} and your balance is "
              f"{money(short['current'])}. You need {money(short['shortfall'])} more.", "error")
    else:
        again = " (You had already booked this; you were charged once.)" if result.replayed else ""
        flash(f"Booked {room.description}: paid {money(room.total)}. "
              f"Balance: {money(result.transaction.balance_snapshot)}.{again}", "success")
    return redirect(url_for(".index"), 303)
