"""The ledger as a wallet's history: the changes a socket missed, and whether a change numbered ``seq`` exists."""
from __future__ import annotations

from balance.services import replay
from tests.support.wallets import fund, new_admin, new_user, pay


def test_the_changes_after_a_seq_come_back_in_order_with_the_balance_each_left(ctx):
    admin, user = new_admin(), new_user()
    fund(user, admin, 5000)
    pay(user, 1200)
    pay(user, 300)

    changes = replay.changes_between(user, 1)

    assert [(c.seq, c.transaction_type, c.amount, c.previous_balance, c.new_balance) for c in changes] == [
        (2, "payment", 1200, 5000, 3800), (3, "payment", 300, 3800, 3500)]
    assert [c.seq for c in replay.changes_between(user, 0, 2)] == [1, 2]


def test_a_seq_exists_only_for_the_wallet_that_made_that_change(ctx):
    admin, user, other = new_admin(), new_user(), new_user()
    fund(user, admin, 5000)
    pay(user, 100)
    fund(other, admin, 700)

    assert [replay.has_change(user, seq) for seq in (1, 2, 3, 0)] == [True, True, False, False]
    assert replay.has_change(other, 1) and not replay.has_change(other, 2)
    assert not replay.has_change(admin, 1)  # an admin with no wallet change of their own
