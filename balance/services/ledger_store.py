"""Writes journal entries to the database and checks the books.

A wallet leg is applied with one guarded ``UPDATE ... RETURNING``: the wallet's cached
balance and ``seq`` move together with the posting that records them, and a leg that
would take it below zero matches no row. House legs are only posted: a house
account's balance is the sum of its postings, so no change waits on its row.

These are the hot path of every balance change, so they are SQLAlchemy Core
statements built once at import (no ORM unit of work, no per-call compilation) run
on the session's connection, inside the caller's transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..database import no_statement_timeout, together
from ..domain.errors import AccountBusy, InsufficientFunds
from ..domain.ledger import EntryPlan
from ..extensions import db
from ..models import Account, JournalEntry, Posting, utcnow

_accounts = Account.__table__
_entries = JournalEntry.__table__
_postings = Posting.__table__

_MOVE_WALLET = (
    update(_accounts)
    .where(_accounts.c.user_id == bindparam("owner"), _accounts.c.kind == "wallet",
           _accounts.c.balance + bindparam("delta") >= 0)
    .values(balance=_accounts.c.balance + bindparam("delta"), seq=_accounts.c.seq + 1, updated_at=bindparam("now"))
    .returning(_accounts.c.id, _accounts.c.balance, _accounts.c.seq, _accounts.c.currency)
)
_WALLET_BALANCE = select(_accounts.c.balance).where(_accounts.c.user_id == bindparam("owner"),
                                                   _accounts.c.kind == "wallet")
_INSERT_ENTRY = insert(_entries)
_INSERT_LEG = insert(_postings).values(
    entry_id=select(_entries.c.id).where(_entries.c.reference == bindparam("entry_reference")).scalar_subquery())


@dataclass(frozen=True)
class Applied:
    """A wallet after a change: which account, by how much, and the balance and seq it now has."""

    account_id: int
    amount: int
    balance_after: int
    seq: int
    currency: str


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


MOVE_TRIES = 3  # guarded updates of one change before it gives up on a wallet whose balance keeps moving


def move_wallet(user_id: int, delta: int, now) -> Applied:
    """Add ``delta`` (signed minor units) to the user's wallet, or raise ``InsufficientFunds`` having written nothing.

    One statement: the guard, the new balance and the next ``seq`` are decided by the
    database under the row lock, so concurrent changes of one wallet queue here and
    each sees the balance the previous one left. When the guard refuses, the balance is
    read for the refusal's details; if money arrived in between (PostgreSQL's statements
    each see what committed before them), the change is tried again instead.
    """
    for _ in range(MOVE_TRIES):
        rows = together((_MOVE_WALLET, {"owner": user_id, "delta": delta, "now": now}))[0]  # may carry the BEGIN
        if rows:
            account_id, balance, seq, currency = rows[0]
            return Applied(account_id, delta, balance, seq, currency)
        current = db.session.connection().execute(_WALLET_BALANCE, {"owner": user_id}).scalar_one_or_none()
        if current is None:
            raise LookupError(f"user {user_id} has no wallet")
        if current + delta < 0:
            raise InsufficientFunds("insufficient balance",
                                    details={"required": -delta, "current": current, "shortfall": -delta - current})
        # On PostgreSQL each statement sees what committed before it: money that arrived between the guard and
        # this read makes the change affordable after all (else the 402 would say "short by -x"): try again.
    raise AccountBusy("this wallet's balance kept changing while the change was made; please try again")


def entry_steps(plan: EntryPlan, wallet: Applied, transaction_id: str | None, now) -> list:
    """The statements that write a balanced entry whose wallet leg ``wallet`` was applied by ``move_wallet``.

    For ``database.together``: the entry, then one posting per leg, which finds its
    entry by the entry's unique reference (so no statement waits for another's id).
    The wallet's posting carries the balance and seq it produced (the ledger is the
    history the gateway replays); house postings carry neither.
    """
    legs = [leg for leg in plan.legs if not leg.house]
    if len(legs) != 1 or legs[0].account_id != wallet.account_id or legs[0].amount != wallet.amount:
        raise ValueError(f"{plan.reference}: its one wallet leg must be the change just applied")
    steps = [(_INSERT_ENTRY, {"reference": plan.reference, "kind": plan.kind, "transaction_id": transaction_id,
                              "created_at": now})]
    for leg in plan.legs:
        steps.append((_INSERT_LEG, {
            "entry_reference": plan.reference, "account_id": leg.account_id, "amount": leg.amount,
            "balance_after": None if leg.house else wallet.balance_after,
            "account_seq": None if leg.house else wallet.seq, "created_at": now,
        }))
    return steps


@dataclass(frozen=True)
class Drift:
    account_id: int
    label: str
    cached: int
    posted: int
    measure: str = "balance"  # or "seq": what ``cached`` and ``posted`` count (minor units or changes)


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
    in ``house_balances``), so for them there is nothing cached to drift. It reads the
    whole book, so the statement timeout requests live under does not apply to it.

    Each account's cached numbers and its postings' sums are read by one statement, so they
    are of one moment: read separately (READ COMMITTED gives each statement its own), a
    payment committing in between was reported as drift on a live system (23 of 40 runs at
    150 changes/s). The other reads cannot disagree that way: an entry is committed whole.
    """
    no_statement_timeout(db.session.connection())
    posted_by_account = (select(Posting.account_id, func.sum(Posting.amount).label("posted"),
                                func.count(Posting.account_seq).label("changes"))
                         .group_by(Posting.account_id).subquery())
    drifts = []
    house = {}
    accounts = db.session.execute(
        select(Account.id, Account.kind, Account.code, Account.user_id, Account.balance, Account.seq,
               posted_by_account.c.posted, posted_by_account.c.changes)
        .outerjoin(posted_by_account, posted_by_account.c.account_id == Account.id)
    ).all()
    for acc in accounts:
        posted = int(acc.posted or 0)
        if acc.kind != "wallet":
            house[acc.code] = posted
            if acc.balance or acc.seq:
                drifts.append(Drift(acc.id, acc.code + " (keeps no cached balance)", acc.balance, 0))
            continue
        label = f"wallet of user {acc.user_id}"
        if posted != acc.balance:
            drifts.append(Drift(acc.id, label, acc.balance, posted))
        elif int(acc.changes or 0) != acc.seq:
            drifts.append(Drift(acc.id, label + " (seq)", acc.seq, int(acc.changes or 0), measure="seq"))
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
