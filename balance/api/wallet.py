"""``/balance`` and ``/transactions``: the wallet API of the seed, completed."""
from __future__ import annotations

from flask import Blueprint, request
from flask_jwt_extended import current_user

from .. import wire
from ..auth import admin_required, user_required
from ..caller_gate import locks_a_wallet
from ..domain.errors import InsufficientFunds
from ..domain.money import to_wire
from ..services import history, idempotency, snapshots, wallet
from .body import json_object
from .schemas import PaymentSchema, ProcessSchema, TopupSchema, load

bp = Blueprint("wallet_api", __name__)


def _keyed_body(schema, endpoint: str) -> tuple[dict, str | None, str | None]:
    data = load(schema, json_object())
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    return data, key, idempotency.fingerprint(endpoint, data) if key else None


def _replay_header(result) -> dict:
    return {"Idempotent-Replayed": "true"} if result.replayed else {}


def _transaction(result) -> dict:
    """The transaction as this request is answered: a replay gets exactly the first answer."""
    return result.first_answer or wire.transaction(result.transaction)


@bp.get("/balance")
@user_required
def get_balance():
    """The caller's balance, its currency and its change counter ``seq``."""
    snap = snapshots.current(current_user.id)
    return {"balance": to_wire(snap.balance), "currency": snap.currency, "seq": snap.seq,
            "updated_at": wire.timestamp(snap.updated_at)}


@bp.get("/transactions")
@user_required
def list_transactions():
    """The caller's own transactions, newest first, by cursor."""
    page = history.transactions_of(current_user.id, history.page_size(request.args.get("limit")),
                                   request.args.get("cursor") or None)
    return {"items": [wire.transaction(t) for t in page.items], "next_cursor": page.next_cursor}


@bp.get("/transactions/<transaction_id:transaction_id>")
@user_required
def get_transaction(transaction_id):
    """One of the caller's transactions."""
    return wire.transaction(wallet.get_transaction(current_user.id, transaction_id))


@bp.post("/transactions/topup")
@user_required
def request_topup():
    """Ask for a top-up; it stays pending until an admin decides."""
    data, key, print_ = _keyed_body(TopupSchema, "topup")
    result = wallet.request_topup(wallet.RequestTopup(current_user.id, data["amount"], data.get("description"),
                                                      key, print_))
    return _transaction(result), 201, _replay_header(result)


@bp.get("/transactions/topup/pending")
@admin_required
def pending_topups():
    """Every pending top-up, oldest first, with who asked."""
    return {"items": [dict(wire.transaction(t), user=wire.user(t.user)) for t in history.pending_topups()]}


@bp.patch("/transactions/topup/<transaction_id>/process")
@locks_a_wallet
@admin_required
def process_topup(transaction_id):
    """Approve (``success``) or reject (``failed``) a pending top-up, once, unless the caller asked for it (403)."""
    data = load(ProcessSchema, json_object())
    admin = wire.user(current_user)  # read before the commit expires it (else one more query to read it back)
    result = wallet.process_topup(wallet.ProcessTopup(transaction_id, admin["id"], data["status"] == "success",
                                                      data.get("admin_notes")))
    return dict(wire.transaction(result.transaction), processed_by=admin)


@bp.post("/transactions/payment")
@locks_a_wallet
@user_required
def pay():
    """Pay from the balance; 402 with the shortfall when it is not enough (the attempt is recorded)."""
    data, key, print_ = _keyed_body(PaymentSchema, "payment")
    result = wallet.pay(wallet.MakePayment(current_user.id, data["amount"], data.get("description"),
                                           data.get("reference"), key, print_))
    if result.insufficient:
        short = result.insufficient
        error = InsufficientFunds("insufficient balance for this payment")
        body = {"error": {"code": error.code, "message": error.message,
                          **wire.insufficient_details(short["required"], short["current"]),
                          "transaction": _transaction(result)}}
        return body, 402, _replay_header(result)
    return _transaction(result), 201, _replay_header(result)
