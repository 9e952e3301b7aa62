"""Every committed change reaches every open tab of its user, across 3 gevent workers, once and in ``seq`` order.

A worked scenario on the production shape: three users with six tabs each (spread
over the three workers), an admin with one tab, and a mix of changes made over HTTP
on fresh connections (so they are served by any worker): approved and rejected
top-ups, a payment, a payment refused for want of funds.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.clients import Tab, close_all, open_spread_tabs, open_tabs

pytestmark = pytest.mark.multiprocess

TABS_PER_USER = 6


def updated(tx: dict, previous, new, seq: int) -> tuple[str, dict]:
    return "balance_updated", {"newBalance": new, "previousBalance": previous, "transactionId": tx["id"],
                               "transactionType": tx["type"], "amount": tx["amount"], "seq": seq}


def created(tx: dict) -> tuple[str, dict]:
    """A top-up request: it moves no money, but the user's other tabs list it."""
    return "transaction_created", {"transactionId": tx["id"], "transactionType": "topup", "amount": tx["amount"],
                                   "status": "pending"}


def completed(tx: dict, new) -> tuple[str, dict]:
    return "transaction_completed", {"transactionId": tx["id"], "transactionType": tx["type"],
                                     "amount": tx["amount"], "status": "success", "newBalance": new}


def failed(tx: dict, reason: str) -> tuple[str, dict]:
    return "transaction_failed", {"transactionId": tx["id"], "transactionType": tx["type"],
                                  "amount": tx["amount"], "reason": reason}


def insufficient(tx: dict, required, current) -> tuple[str, dict]:
    return "balance_insufficient", {"transactionId": tx["id"], "requiredAmount": required,
                                    "currentBalance": current, "shortfall": round(required - current, 2)}


def matches(received: list, expected: list) -> bool:
    """Same event names in the same order, each payload holding the expected fields (plus its timestamp)."""
    return len(received) == len(expected) and all(
        name == want_name and isinstance(data, dict) and data.items() >= want.items()
        and str(data.get("timestamp", "")).endswith("Z")
        for (name, data), (want_name, want) in zip(received, expected)
    )


def test_every_tab_of_a_user_gets_each_of_its_events_once_in_order_and_no_tab_gets_another_users(cluster):
    api, admin = cluster.api, cluster.admin
    alice, bob, carol = (api.new_user(name) for name in ("alice", "bob", "carol"))
    tabs = open_spread_tabs(cluster.url, [alice, bob, carol], TABS_PER_USER)
    try:
        admin_tabs = open_tabs(cluster.url, admin, 1)
        tabs[admin.id] = admin_tabs

        expected = {alice.id: [], bob.id: [], carol.id: []}

        tx = api.top_up(alice, admin, 100)
        expected[alice.id] += [created(tx), updated(tx, 0, 100, 1), completed(tx, 100)]
        tx = api.top_up(bob, admin, 50)
        expected[bob.id] += [created(tx), updated(tx, 0, 50, 1), completed(tx, 50)]
        tx = api.pay(alice, 30.5)
        expected[alice.id] += [updated(tx, 100, 69.5, 2), completed(tx, 69.5)]
        tx = api.decide(admin, api.request_topup(carol, 20)["id"], approve=False, notes="card declined")
        expected[carol.id] += [created(tx), failed(tx, "card declined")]
        tx = api.pay(bob, 80, expect=402)["error"]["transaction"]
        expected[bob.id] += [failed(tx, "insufficient_balance"), insufficient(tx, 80, 50)]
        tx = api.top_up(alice, admin, 5.25)
        expected[alice.id] += [created(tx), updated(tx, 69.5, 74.75, 3), completed(tx, 74.75)]
        tx = api.top_up(carol, admin, 10)
        expected[carol.id] += [created(tx), updated(tx, 0, 10, 1), completed(tx, 10)]
        tx = api.pay(bob, 50)
        expected[bob.id] += [updated(tx, 50, 0, 2), completed(tx, 0)]

        for person in (alice, bob, carol):
            want = expected[person.id]
            for tab in tabs[person.id]:
                tab.wait_until(lambda t: len(t.events) >= 1 + len(want), f"{len(want)} events")
                assert tab.events[0] == ("balance_initial", {"balance": 0, "seq": 0})
                assert matches(tab.events[1:], want), f"{tab.label} got {tab.events[1:]}\nexpected {want}"
                assert tab.seqs() == list(range(1, len(tab.seqs()) + 1))

        # the admin's tab carries the admins' queue events only: 5 requests, 5 decisions, nobody's balance
        admin_tab = admin_tabs[0]
        admin_tab.wait_until(lambda t: len(t.events) >= 11, "the admins' 10 queue events")
        assert sorted(set(admin_tab.names())) == ["balance_initial", "topup_processed", "topup_requested"]
        assert (admin_tab.names().count("topup_requested"), admin_tab.names().count("topup_processed")) == (5, 5)
    finally:
        for group in tabs.values():
            close_all(group)


def test_http_answers_and_the_socket_agree_on_the_balance_after_a_burst_of_changes(cluster):
    api, admin = cluster.api, cluster.admin
    dana = api.new_user("dana")
    tabs = open_tabs(cluster.url, dana, TABS_PER_USER)
    try:
        amounts = [1, 2.5, 3, 4.75, 5, 6, 7.25, 8, 9, 10]
        for amount in amounts:
            api.top_up(dana, admin, amount)
        for tab in tabs:
            tab.wait_for_seq(len(amounts))
            assert tab.seqs() == list(range(1, len(amounts) + 1)), f"{tab.label}: {tab.seqs()}"
            assert tab.of("balance_updated")[-1]["newBalance"] == sum(amounts) == 56.5
            assert tab.call("get_current_balance") == {"balance": 56.5, "seq": len(amounts)}
        assert api.balance(dana)["seq"] == len(amounts)
    finally:
        close_all(tabs)


def test_concurrent_changes_of_one_user_served_by_different_workers_arrive_once_each_and_in_seq_order(cluster):
    api, admin = cluster.api, cluster.admin
    kim = api.new_user("kim")
    pending = [api.request_topup(kim, amount)["id"] for amount in range(1, 25)]
    tabs = open_tabs(cluster.url, kim, TABS_PER_USER)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            approved = list(pool.map(lambda tx_id: api.decide(admin, tx_id), pending))
        assert {tx["status"] for tx in approved} == {"success"}
        for tab in tabs:
            tab.wait_until(lambda t: t.names().count("transaction_completed") >= len(pending) and
                           len(t.seqs()) >= len(pending), f"{len(pending)} changes and their completions")
            assert tab.seqs() == list(range(1, len(pending) + 1)), f"{tab.label}: {tab.seqs()}"
            completed_ids = [e["transactionId"] for e in tab.of("transaction_completed")]
            assert sorted(completed_ids) == sorted(pending), f"{tab.label}: completions {completed_ids}"
    finally:
        close_all(tabs)


def test_no_event_reaches_a_tab_before_its_connect_even_when_many_connect_at_once(cluster):
    """The greeting is sent after the connect is acknowledged: a client that resets on ``connect`` keeps it."""
    nora = cluster.api.new_user("nora")
    cluster.api.top_up(nora, cluster.admin, 3)
    tabs = [Tab(f"nora tab {i}") for i in range(30)]
    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(lambda tab: tab.connect(cluster.url, nora.token), tabs))
        for tab in tabs:
            tab.wait_for("balance_initial")
            assert tab.early == [], f"{tab.label}: received before its connect: {tab.early}"
            assert tab.events == [("balance_initial", {"balance": 3, "seq": 1})]
    finally:
        close_all(tabs)
