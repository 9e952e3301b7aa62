"""Writes journal entries to the database and checks the books.

Every leg is applied with one guarded ``UPDATE ... RETURNING``: the account's cached
balance and ``seq`` move together with the posting that records them, and a wallet
leg that would go below zero matches no row. Legs are applied in the order given
(wallet first, system account last), which keeps lock order the same everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..domain.errors import InsufficientFunds, LedgerError
from ..domain.ledger import EntryPlan
from ..extensions import db
from ..models import Account, JournalEntry, Posting, utcnow


@dataclass(frozen=True)
class Applied:
    account_id: int
    amount: int
    balance_after: int
    seq: int


def wallet_of(user_id: int) -> Account:
    account = db.session.execute(select(Account).where(Account.user_id == user_id)).scalar_one_or_none()
    if account is None:
        raise LookupError(f"user {user_id} has no wallet")
    return account


def system_account_id(code: str, currency: str) -> int:
    """The id of a house account, created on first use (safe when two requests race to create it).

    Ids are remembered per app: a house account is never deleted, and every change needs one.
    """
    known = current_app.extensions.setdefault("balance.house_accounts", {})
    full = f"{code}:{currency}"
    if full in known:
        return known[full]
    found = db.session.execute(select(Account.id).where(Account.code == full)).scalar_one_or_none()
    if found is None:
        try:
            with db.session.begin_nested():
                db.session.execute(insert(Account).values(kind="system", code=full, currency=currency, balance=0,
                                                          seq=0, updated_at=utcnow()))
        except IntegrityError:
            pass
        found = db.session.execute(select(Account.id).where(Account.code == full)).scalar_one()
    known[full] = found
    return found


def _apply(leg, now):
    return db.session.execute(
        update(Account)
        .where(Account.id == leg.account_id)
        .where(or_(Account.kind != "wallet", Account.balance + leg.amount >= 0))
        .values(balance=Account.balance + leg.amount, seq=Account.seq + 1, updated_at=now)
        .returning(Account.balance, Account.seq)
    ).one_or_none()


def post(plan: EntryPlan, transaction_id: str | None) -> dict[int, Applied]:
    """Apply a balanced entry; raise ``InsufficientFunds`` (nothing applied) if the first leg's wallet would go negative.

    Only the first leg may be refused without harm: nothing has been written yet, so the
    caller may go on to record the refusal in the same transaction (no savepoint needed).
    A refusal of a later leg raises ``LedgerError``, which must end the transaction.
    The entry is inserted before the later legs, so the house account's row, which every
    change of its kind updates, stays locked for as short a time as this transaction allows.
    """
    now = utcnow()
    applied: dict[int, Applied] = {}
    first, *rest = plan.legs
    row = _apply(first, now)
    if row is None:
        current = db.session.execute(select(Account.balance).where(Account.id == first.account_id)).scalar_one()
        raise InsufficientFunds(
            "insufficient balance",
            details={"required": -first.amount, "current": current, "shortfall": -first.amount - current},
        )
    applied[first.account_id] = Applied(first.account_id, first.amount, row.balance, row.seq)
    entry_id = db.session.execute(
        insert(JournalEntry)
        .values(reference=plan.reference, kind=plan.kind, transaction_id=transaction_id, created_at=now)
        .returning(JournalEntry.id)
    ).scalar_one()
    for leg in rest:
        row = _apply(leg, now)
        if row is None:
            raise LedgerError(f"leg on account {leg.account_id} of {plan.reference} refused after the first was applied")
        applied[leg.account_id] = Applied(leg.account_id, leg.amount, row.balance, row.seq)
    db.session.execute(
        insert(Posting),
        [
            {"entry_id": entry_id, "account_id": a.account_id, "amount": a.amount, "balance_after": a.balance_after,
             "account_seq": a.seq, "created_at": now}
            for a in applied.values()
        ],
    )
    return applied


@dataclass(frozen=True)
class Drift:
    account_id: int
    label: str
    cached: int
    posted: int


@dataclass(frozen=True)
class VerifyReport:
    accounts: int
    entries: int
    postings: int
    drifts: list[Drift]
    unbalanced_entries: list[tuple[str, int]]
    total: int

    @property
    def clean(self) -> bool:
        return not self.drifts and not self.unbalanced_entries and self.total == 0


def verify() -> VerifyReport:
    """Recompute every balance from the postings and check every entry (and the whole book) sums to zero."""
    sums = dict(db.session.execute(select(Posting.account_id, func.sum(Posting.amount)).group_by(Posting.account_id)).all())
    seqs = dict(db.session.execute(select(Posting.account_id, func.count(Posting.id)).group_by(Posting.account_id)).all())
    drifts = []
    accounts = db.session.execute(select(Account.id, Account.code, Account.user_id, Account.balance, Account.seq)).all()
    for acc in accounts:
        posted = int(sums.get(acc.id) or 0)
        label = acc.code or f"wallet of user {acc.user_id}"
        if posted != acc.balance:
            drifts.append(Drift(acc.id, label, acc.balance, posted))
        elif int(seqs.get(acc.id) or 0) != acc.seq:
            drifts.append(Drift(acc.id, label + " (seq)", acc.seq, int(seqs.get(acc.id) or 0)))
    unbalanced = db.session.execute(
        select(JournalEntry.reference, func.sum(Posting.amount))
        .join(Posting, Posting.entry_id == JournalEntry.id)
        .group_by(JournalEntry.id, JournalEntry.reference)
        .having(func.sum(Posting.amount) != 0)
    ).all()
    total = db.session.execute(select(func.coalesce(func.sum(Posting.amount), 0))).scalar_one()
    entries = db.session.execute(select(func.count(JournalEntry.id))).scalar_one()
    postings = db.session.execute(select(func.count(Posting.id))).scalar_one()
    return VerifyReport(len(accounts), entries, postings, drifts, [(r[0], int(r[1])) for r in unbalanced], int(total))
