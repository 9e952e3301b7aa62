"""Writes journal entries to the database and checks the books.

Every leg is applied with one guarded ``UPDATE ... RETURNING``: the account's cached
balance and ``seq`` move together with the posting that records them, and a wallet
leg that would go below zero matches no row. Legs are applied in the order given
(wallet first, system account last), which keeps lock order the same everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import func, insert, select, update
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
    if found is not None:
        known[full] = found  # committed by someone: safe to remember
        return found
    try:
        with db.session.begin_nested():
            db.session.execute(insert(Account).values(kind="system", code=full, currency=currency, balance=0,
                                                      seq=0, updated_at=utcnow()))
    except IntegrityError:  # another transaction created and committed it first
        pass
    # Not remembered yet: if created here, it exists only if this transaction commits.
    return db.session.execute(select(Account.id).where(Account.code == full)).scalar_one()


def post(plan: EntryPlan, transaction_id: str | None) -> dict[int, Applied]:
    """Apply a balanced entry; raise ``InsufficientFunds`` (nothing written) if a wallet would go negative.

    Wallet legs move the wallet's cached balance and ``seq`` with one guarded
    ``UPDATE ... RETURNING`` each; a refused wallet leg must come first, before anything
    is written, so the caller can record the refusal in the same transaction (no
    savepoint). House legs are only posted: their balance is the sum of their postings,
    so no change ever waits for another on a house account's row.
    """
    now = utcnow()
    applied: dict[int, Applied] = {}
    postings = []
    for position, leg in enumerate(plan.legs):
        if leg.house:
            postings.append({"account_id": leg.account_id, "amount": leg.amount, "balance_after": None,
                             "account_seq": None})
            continue
        row = db.session.execute(
            update(Account)
            .where(Account.id == leg.account_id, Account.kind == "wallet", Account.balance + leg.amount >= 0)
            .values(balance=Account.balance + leg.amount, seq=Account.seq + 1, updated_at=now)
            .returning(Account.balance, Account.seq)
        ).one_or_none()
        if row is None:
            if position > 0:
                raise LedgerError(f"wallet leg {position} of {plan.reference} refused after others were applied")
            current = db.session.execute(select(Account.balance).where(Account.id == leg.account_id)).scalar_one()
            raise InsufficientFunds(
                "insufficient balance",
                details={"required": -leg.amount, "current": current, "shortfall": -leg.amount - current},
            )
        applied[leg.account_id] = Applied(leg.account_id, leg.amount, row.balance, row.seq)
        postings.append({"account_id": leg.account_id, "amount": leg.amount, "balance_after": row.balance,
                         "account_seq": row.seq})
    entry_id = db.session.execute(
        insert(JournalEntry)
        .values(reference=plan.reference, kind=plan.kind, transaction_id=transaction_id, created_at=now)
        .returning(JournalEntry.id)
    ).scalar_one()
    db.session.execute(insert(Posting), [dict(p, entry_id=entry_id, created_at=now) for p in postings])
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
    house_balances: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.drifts and not self.unbalanced_entries and self.total == 0


def verify() -> VerifyReport:
    """Recompute every wallet's balance and seq from its postings, and check every entry (and the book) sums to zero.

    House accounts keep no cached balance (their balance is their postings' sum, shown
    in ``house_balances``), so for them there is nothing cached to drift.
    """
    sums = dict(db.session.execute(select(Posting.account_id, func.sum(Posting.amount)).group_by(Posting.account_id)).all())
    counts = dict(db.session.execute(
        select(Posting.account_id, func.count(Posting.account_seq)).group_by(Posting.account_id)).all())
    drifts = []
    house = {}
    accounts = db.session.execute(select(Account.id, Account.kind, Account.code, Account.user_id, Account.balance,
                                         Account.seq)).all()
    for acc in accounts:
        posted = int(sums.get(acc.id) or 0)
        if acc.kind != "wallet":
            house[acc.code] = posted
            if acc.balance or acc.seq:
                drifts.append(Drift(acc.id, acc.code + " (keeps no cached balance)", acc.balance, 0))
            continue
        label = f"wallet of user {acc.user_id}"
        if posted != acc.balance:
            drifts.append(Drift(acc.id, label, acc.balance, posted))
        elif int(counts.get(acc.id) or 0) != acc.seq:
            drifts.append(Drift(acc.id, label + " (seq)", acc.seq, int(counts.get(acc.id) or 0)))
    unbalanced = db.session.execute(
        select(JournalEntry.reference, func.sum(Posting.amount))
        .join(Posting, Posting.entry_id == JournalEntry.id)
        .group_by(JournalEntry.id, JournalEntry.reference)
        .having(func.sum(Posting.amount) != 0)
    ).all()
    total = db.session.execute(select(func.coalesce(func.sum(Posting.amount), 0))).scalar_one()
    entries = db.session.execute(select(func.count(JournalEntry.id))).scalar_one()
    postings = db.session.execute(select(func.count(Posting.id))).scalar_one()
    return VerifyReport(len(accounts), entries, postings, drifts, [(r[0], int(r[1])) for r in unbalanced], int(total),
                        house)
