"""Double-entry rules, independent of storage.

A journal entry is a set of legs (account, signed amount) that sums to zero. A
wallet is a liability of the house towards the user: a top-up credits the wallet
and debits the funding account; a payment debits the wallet and credits revenue.
Signs here are from the wallet's point of view: a positive leg raises that
account's balance.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import InsufficientFunds, UnbalancedEntry

TOPUP_FUNDING = "topup_funding"
PAYMENT_REVENUE = "payment_revenue"
SYSTEM_ACCOUNTS = (TOPUP_FUNDING, PAYMENT_REVENUE)


@dataclass(frozen=True)
class Leg:
    """One side of an entry. A ``house`` leg (a system account) keeps no cached balance:
    every change of its kind would otherwise queue on that one row."""

    account_id: int
    amount: int
    house: bool = False


@dataclass(frozen=True)
class EntryPlan:
    reference: str
    kind: str
    legs: tuple[Leg, ...]


def balanced(reference: str, kind: str, legs: list[Leg]) -> EntryPlan:
    """Validate that ``legs`` form a proper entry: non-zero legs, at least two, summing to zero."""
    if len(legs) < 2:
        raise UnbalancedEntry("an entry needs at least two legs")
    if any(leg.amount == 0 or isinstance(leg.amount, bool) or not isinstance(leg.amount, int) for leg in legs):
        raise UnbalancedEntry("every leg must be a non-zero integer of minor units")
    if sum(leg.amount for leg in legs) != 0:
        raise UnbalancedEntry(f"legs of {reference} sum to {sum(leg.amount for leg in legs)}, not zero")
    return EntryPlan(reference=reference, kind=kind, legs=tuple(legs))


def _positive(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise UnbalancedEntry("a top-up or payment moves a positive whole number of minor units")


def require_positive(amount: int) -> int:
    """Refuse, before anything is written, an amount no top-up or payment may move."""
    _positive(amount)
    return amount


def topup_entry(transaction_id: str, wallet_id: int, funding_id: int, amount: int) -> EntryPlan:
    """A top-up: the wallet goes up, the funding account goes down by the same amount."""
    _positive(amount)
    return balanced(f"topup:{transaction_id}", "topup", [Leg(wallet_id, amount), Leg(funding_id, -amount, house=True)])


def payment_entry(transaction_id: str, wallet_id: int, revenue_id: int, amount: int) -> EntryPlan:
    """A payment: the wallet goes down, revenue goes up."""
    _positive(amount)
    return balanced(f"payment:{transaction_id}", "payment", [Leg(wallet_id, -amount), Leg(revenue_id, amount, house=True)])


def check_affordable(balance: int, amount: int) -> None:
    """Refuse a debit that would take a wallet below zero, saying by how much."""
    if amount > balance:
        raise InsufficientFunds(
            "insufficient balance",
            details={"required": amount, "current": balance, "shortfall": amount - balance},
        )
