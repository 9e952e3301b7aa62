"""``/admin``: the pending top-ups (live), decisions, processed top-ups, users and their histories.

A decision needs a confirmation: the page's script asks inline; without scripts the
server shows a confirmation page. The wallet service decides once: a second click or
a second admin gets ``AlreadyProcessed``, and the page says who decided first. An admin's
own top-up request is listed like any other, but only another admin may decide it
(``OwnTopup``): its owner is told so and it stays pending.
"""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from .. import wire
from ..caller_gate import locks_a_wallet
from ..domain.errors import AlreadyProcessed, OwnTopup, ValidationFailed
from ..domain.money import to_wire
from ..services import admin_views, history, wallet
from . import forms
from .guard import admin_required
from .templating import money, when

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_SIZE = 20
USERS_PAGE_SIZE = 50  # the users page refreshes its balances every few seconds: one page's worth
VERBS = {"success": "approved", "failed": "rejected"}


@bp.get("")
@bp.get("/")
@admin_required
def home():
    """The admin's start page is the queue."""
    return redirect(url_for(".pending"))


@bp.get("/topups")
@admin_required
def pending():
    """Pending top-ups, oldest first; new requests appear live."""
    return render_template("admin/pending.html", rows=admin_views.pending())


@bp.post("/topups/<transaction_id>/decide")
@locks_a_wallet
@admin_required
def decide(transaction_id):
    """Approve or reject one pending top-up, once, after a confirmation."""
    try:
        choice = forms.decision(request.form)
    except ValidationFailed as error:
        tx = admin_views.topup(transaction_id)
        if tx.status == "pending" and tx.user_id == g.viewer.id:  # no confirmation page for it, even to correct
            flash(_own(request.form.get("decision") != "reject"), "error")
            return redirect(url_for(".pending"), 303)
        return render_template("admin/confirm.html", tx=tx, choice=request.form.get("decision"),
                               note=request.form.get("note", ""), errors=error.fields), 422
    if request.form.get("confirmed") != "yes":
        tx = admin_views.topup(transaction_id)
        if tx.status != "pending":
            flash(_too_late(transaction_id, choice["approve"]), "error")
            return redirect(url_for(".pending"), 303)
        if tx.user_id == g.viewer.id:  # no confirmation for what the service would refuse anyway
            flash(_own(choice["approve"]), "error")
            return redirect(url_for(".pending"), 303)
        return render_template("admin/confirm.html", tx=tx, choice=request.form["decision"], note=choice["note"] or "",
                               errors={})
    # what the message after the decision names is read before it: once the decision is committed, nothing may fail
    # and show the admin an error page for a decision that was made
    requester = admin_views.topup(transaction_id).user.email
    try:
        result = wallet.process_topup(wallet.ProcessTopup(transaction_id, g.viewer.id, choice["approve"],
                                                          choice["note"]))
    except AlreadyProcessed:
        flash(_too_late(transaction_id, choice["approve"]), "error")
        return redirect(url_for(".pending"), 303)
    except OwnTopup:
        flash(_own(choice["approve"]), "error")
        return redirect(url_for(".pending"), 303)
    tx = result.transaction
    flash(f"{VERBS[tx.status].capitalize()} {money(tx.amount)} for {requester}.", "success")
    return redirect(url_for(".pending"), 303)


def _too_late(transaction_id: str, approve: bool) -> str:
    """Tell the admin who lost a race (or clicked twice) who decided first, and that money moved once."""
    wanted = "approved" if approve else "rejected"
    d = admin_views.decision(transaction_id)
    if d is None:
        return f"Not {wanted}: this top-up no longer exists."
    who = "you" if d.admin_id == g.viewer.id else (d.admin_email or "another admin")
    credited = " Nothing more was credited." if d.status == "success" else " Nothing was credited."
    return f"Not {wanted} again: {who} already {VERBS.get(d.status, d.status)} this top-up at {when(d.at)}." + credited


def _own(approve: bool) -> str:
    """Four eyes: the admin who asked for a top-up is told that another admin must decide it."""
    wanted = "approved" if approve else "rejected"
    return f"Not {wanted}: you asked for this top-up yourself, so another admin must decide it. It is still pending."


@bp.get("/topups/processed")
@admin_required
def processed():
    """Decided top-ups, newest first, with who decided and when."""
    page = admin_views.processed(history.page_size(request.args.get("limit"), PAGE_SIZE),
                                 request.args.get("cursor") or None)
    return render_template("admin/processed.html", page=page, cursor=request.args.get("cursor"))


@bp.get("/users")
@admin_required
def users():
    """Users by email, a page at a time (``limit`` just after ``after``, the previous page's last email), with their
    balances (kept fresh by the page), linking to their histories."""
    limit = history.page_size(request.args.get("limit"), USERS_PAGE_SIZE)
    page = admin_views.users(limit, history.after_email(request.args.get("after")))
    return render_template("admin/users.html", page=page, after=request.args.get("after"),
                           limit=request.args.get("limit") or None)


@bp.get("/users/balances")
@admin_required
def balances():
    """The users page's refresh: the wallets of the users it shows (``ids``), balance in currency units and seq.

    By ids, not by position: a user who signs up meanwhile would shift a position's window
    and leave a shown row without its updates."""
    return {"items": [dict(b, balance=to_wire(b["balance"]), updated_at=wire.timestamp(b["updated_at"]))
                      for b in admin_views.balances(history.user_ids(request.args.get("ids")))]}


@bp.get("/users/<int:user_id>")
@admin_required
def user_history(user_id):
    """One user's balance and transactions, newest first."""
    view = admin_views.user_history(user_id, PAGE_SIZE, request.args.get("cursor") or None)
    return render_template("admin/user.html", view=view, cursor=request.args.get("cursor"))
