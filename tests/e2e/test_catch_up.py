"""A tab that was away catches up from the ledger: the ``balance_updated`` it missed, in order, then the snapshot.

The client names the last ``seq`` it saw, at connect (``auth.since_seq`` or the
``since_seq`` query parameter) or later as the argument of ``get_current_balance``.
"""
from __future__ import annotations

import pytest

from tests.e2e.clients import Tab, close_all, open_tabs

pytestmark = pytest.mark.multiprocess


@pytest.fixture
def away(cluster):
    """A user whose tab saw seq 2, went away, and missed three changes (seq 3, 4, 5) and a refused payment."""
    api, admin = cluster.api, cluster.admin
    user = api.new_user("away")
    tab, = open_tabs(cluster.url, user, 1)
    try:
        api.top_up(user, admin, 40)
        api.pay(user, 15)
        tab.wait_for_seq(2)
    finally:
        tab.close()
    missed = [api.top_up(user, admin, 10), api.pay(user, 5)]
    api.pay(user, 999, expect=402)  # refused: not a change, no seq
    missed.append(api.top_up(user, admin, 2.5))
    return user, missed


def greeted(tab: Tab) -> list:
    tab.wait_for("balance_initial")
    return tab.events


@pytest.mark.parametrize("how", ["auth", "query string"])
def test_a_tab_back_with_since_seq_gets_exactly_the_three_changes_it_missed_in_order_then_balance_initial(
        cluster, away, how):
    user, missed = away
    tab = Tab("returning")
    try:
        if how == "auth":
            tab.connect(cluster.url, auth={"token": user.token, "since_seq": 2})
        else:
            tab.connect(cluster.url, user.token, query="?since_seq=2")
        events = greeted(tab)
        assert [name for name, _ in events] == ["balance_updated"] * 3 + ["balance_initial"], events
        assert [(e["seq"], e["transactionId"], e["previousBalance"], e["newBalance"]) for _, e in events[:3]] == [
            (3, missed[0]["id"], 25, 35), (4, missed[1]["id"], 35, 30), (5, missed[2]["id"], 30, 32.5)]
        assert events[3] == ("balance_initial", {"balance": 32.5, "seq": 5})
    finally:
        tab.close()


def test_get_current_balance_with_since_seq_replays_the_missed_changes_and_its_ack_carries_the_snapshot(
        cluster, away):
    user, missed = away
    tab, = open_tabs(cluster.url, user, 1)
    try:
        assert tab.call("get_current_balance", {"since_seq": 2}) == {"balance": 32.5, "seq": 5}
        tab.wait_for("balance_initial", count=2)
        assert tab.names() == ["balance_initial", "balance_updated", "balance_updated", "balance_updated",
                               "balance_initial"]
        assert tab.seqs() == [3, 4, 5]
        assert [e["transactionId"] for e in tab.of("balance_updated")] == [tx["id"] for tx in missed]
    finally:
        tab.close()


def test_a_tab_that_is_up_to_date_gets_only_the_snapshot(cluster, away):
    user, _ = away
    tab = Tab("current").connect(cluster.url, auth={"token": user.token, "since_seq": 5})
    try:
        assert greeted(tab) == [("balance_initial", {"balance": 32.5, "seq": 5})]
        assert tab.call("get_current_balance", {"since_seq": 5}) == {"balance": 32.5, "seq": 5}
    finally:
        tab.close()


@pytest.mark.parametrize("bad", [-1, "two", 1.5, True, {"since_seq": "x"}], ids=repr)
def test_get_current_balance_with_a_bad_since_seq_answers_an_error_and_the_socket_stays_usable(cluster, bad):
    user = cluster.api.new_user("bad-seq")
    tab, = open_tabs(cluster.url, user, 1)
    try:
        assert "error" in tab.call("get_current_balance", bad)
        tab.wait_for("error")
        assert "since_seq" in tab.of("error")[0]["message"]
        assert tab.call("get_current_balance") == {"balance": 0, "seq": 0}
    finally:
        close_all([tab])
