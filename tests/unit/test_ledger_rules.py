"""Double-entry rules, before anything touches a database."""
from __future__ import annotations

import pytest

from balance.domain.errors import InsufficientFunds, LedgerError, UnbalancedEntry
from balance.domain.ledger import Leg, balanced, check_affordable, payment_entry, topup_entry

WALLET, FUNDING, REVENUE = 1, 2, 3


def test_a_balanced_entry_keeps_its_reference_kind_and_legs_in_order():
    plan = balanced("manual:1", "adjustment", [Leg(WALLET, 500), Leg(FUNDING, -300), Leg(REVENUE, -200)])
    assert (plan.reference, plan.kind) == ("manual:1", "adjustment")
    assert plan.legs == (Leg(WALLET, 500), Leg(FUNDING, -300), Leg(REVENUE, -200))
    assert sum(leg.amount for leg in plan.legs) == 0


@pytest.mark.parametrize(
    ("legs", "message"),
    [
        ([], "at least two legs"),
        ([Leg(WALLET, 0)], "at least two legs"),
        ([Leg(WALLET, 100)], "at least two legs"),
        ([Leg(WALLET, 100), Leg(FUNDING, -99)], "sum to 1, not zero"),
        ([Leg(WALLET, 100), Leg(FUNDING, 100)], "sum to 200, not zero"),
        ([Leg(WALLET, 100), Leg(FUNDING, -100), Leg(REVENUE, -1)], "sum to -1, not zero"),
        ([Leg(WALLET, 0), Leg(FUNDING, 0)], "non-zero integer"),
        ([Leg(WALLET, 100), Leg(FUNDING, -100), Leg(REVENUE, 0)], "non-zero integer"),
        ([Leg(WALLET, 1.5), Leg(FUNDING, -1.5)], "non-zero integer"),
        ([Leg(WALLET, True), Leg(FUNDING, -1)], "non-zero integer"),
        ([Leg(WALLET, "100"), Leg(FUNDING, "-100")], "non-zero integer"),
    ],
    ids=["no legs", "one zero leg", "one leg", "off by one", "both positive", "three legs off", "zero legs",
         "a zero leg", "floats", "a boolean", "strings"],
)
def test_an_entry_that_is_not_two_or_more_non_zero_integer_legs_summing_to_zero_is_refused(legs, message):
    with pytest.raises(UnbalancedEntry, match=message) as refused:
        balanced("ref:1", "test", legs)
    assert isinstance(refused.value, LedgerError)
    assert refused.value.code == "unbalanced_entry"


def test_a_topup_credits_the_wallet_and_debits_funding_by_the_same_amount():
    plan = topup_entry("tx-1", WALLET, FUNDING, 5000)
    assert (plan.reference, plan.kind) == ("topup:tx-1", "topup")
    assert plan.legs == (Leg(WALLET, 5000), Leg(FUNDING, -5000, house=True))


def test_a_payment_debits_the_wallet_first_and_credits_revenue():
    plan = payment_entry("tx-2", WALLET, REVENUE, 1250)
    assert (plan.reference, plan.kind) == ("payment:tx-2", "payment")
    assert plan.legs == (Leg(WALLET, -1250), Leg(REVENUE, 1250, house=True))


def test_a_top_up_and_a_payment_of_the_same_transaction_id_have_different_references():
    assert topup_entry("x", WALLET, FUNDING, 1).reference != payment_entry("x", WALLET, REVENUE, 1).reference


def test_a_top_up_or_payment_of_nothing_is_not_an_entry():
    with pytest.raises(UnbalancedEntry):
        topup_entry("t", WALLET, FUNDING, 0)
    with pytest.raises(UnbalancedEntry):
        payment_entry("p", WALLET, REVENUE, 0)


@pytest.mark.parametrize(("balance", "amount"), [(5000, 5000), (5000, 1), (1, 1), (0, 0), (10**12, 10**12 - 1)])
def test_a_wallet_can_spend_up_to_exactly_its_balance(balance, amount):
    check_affordable(balance, amount)


@pytest.mark.parametrize(("balance", "amount", "shortfall"), [(3750, 4000, 250), (0, 1, 1), (4999, 5000, 1)])
def test_spending_more_than_the_balance_is_refused_with_the_shortfall(balance, amount, shortfall):
    with pytest.raises(InsufficientFunds) as refused:
        check_affordable(balance, amount)
    assert refused.value.code == "insufficient_balance"
    assert refused.value.details == {"required": amount, "current": balance, "shortfall": shortfall}


@pytest.mark.parametrize("amount", [-1, -5000, True, 1.5])
@pytest.mark.parametrize("entry", [topup_entry, payment_entry])
def test_a_top_up_or_payment_of_a_negative_or_non_integer_amount_is_not_an_entry(entry, amount):
    with pytest.raises(UnbalancedEntry):
        entry("tx", WALLET, FUNDING, amount)
