"""Nothing committed is lost between commit and publish: the outbox relay delivers what was left behind.

Two ways a committed change can miss its publish: the process that committed it
died before publishing (here: the test process commits through the services with
publishing off, and never publishes, exactly the state a crash leaves), or the
publish is off or failing (a server started with ``OUTBOX_PUBLISH_AFTER_COMMIT=false``,
so every change travels by the relay, which runs in all three workers at once).
"""
from __future__ import annotations

import itertools

import pytest

from tests.e2e.clients import close_all, open_tabs
from tests.e2e.servers import BalanceServer, commit_without_publishing, deploy, eventually, query, server_env

pytestmark = pytest.mark.multiprocess


def test_a_change_whose_process_died_before_publishing_reaches_every_tab_once_through_the_relay(cluster):
    api, admin = cluster.api, cluster.admin
    erin = api.new_user("erin")
    api.top_up(erin, admin, 10)
    tabs = open_tabs(cluster.url, erin, 6)
    try:
        pending = api.request_topup(erin, 15)["id"]
        commit_without_publishing(cluster.database_url, pending, admin.id)
        (published_at,), = query(cluster.database_url, "SELECT published_at FROM outbox_events "
                                 "WHERE audience = 'user' AND user_id = %s AND seq = 2", erin.id)
        assert published_at is None, "the commit alone must leave the row for the relay"

        for tab in tabs:
            tab.wait_for("transaction_completed", timeout=10)
            assert tab.names() == ["balance_initial", "transaction_created", "balance_updated",
                                   "transaction_completed"], tab.events
            assert tab.of("balance_updated")[0] | {"timestamp": None} == {
                "newBalance": 25, "previousBalance": 10, "transactionId": pending, "transactionType": "topup",
                "amount": 15, "seq": 2, "timestamp": None}
        eventually(lambda: query(cluster.database_url, "SELECT published_at FROM outbox_events "
                                 "WHERE user_id = %s AND seq = 2", erin.id)[0][0], "the relay marks the row published")

        eventually(lambda: api.balance(erin)["seq"] == 2, "the relay brings the balance cache up to the ledger")

        api.top_up(erin, admin, 1)  # and the next change, published at once, follows in order
        for tab in tabs:
            tab.wait_for_seq(3)
            assert tab.seqs() == [2, 3]
    finally:
        close_all(tabs)


@pytest.fixture(scope="module")
def relay_only(fresh_database, redis_factory, tmp_path_factory):
    redis = redis_factory()
    database_url = fresh_database("relay")
    env = server_env(database_url, redis.url, workers=3, OUTBOX_PUBLISH_AFTER_COMMIT="false")
    server = BalanceServer.gunicorn(env, tmp_path_factory.mktemp("relay") / "gunicorn.log")
    try:
        yield deploy(server, redis, database_url)
    finally:
        server.stop()


def test_with_publishing_after_commit_off_every_change_arrives_by_the_relay_once_and_in_order(relay_only):
    api, admin = relay_only.api, relay_only.admin
    frank, gina = api.new_user("frank"), api.new_user("gina")
    tabs = {u.id: open_tabs(relay_only.url, u, 4) for u in (frank, gina)}
    try:
        for amount in (1, 2, 3):
            api.top_up(frank, admin, amount)
        short = api.pay(frank, 100, expect=402)["error"]["transaction"]
        api.top_up(gina, admin, 7)

        for tab in tabs[frank.id]:
            tab.wait_for("balance_insufficient", timeout=10)
            assert tab.names() == ["balance_initial"] + [
                "transaction_created", "balance_updated", "transaction_completed"] * 3 + [
                "transaction_failed", "balance_insufficient"], tab.events
            assert tab.seqs() == [1, 2, 3]
            assert tab.of("transaction_failed")[0]["transactionId"] == short["id"]
        for tab in tabs[gina.id]:
            tab.wait_for("transaction_completed", timeout=10)
            assert tab.names() == ["balance_initial", "transaction_created", "balance_updated",
                                   "transaction_completed"], tab.events

        eventually(lambda: relay_only.server.count_logged("outbox relay published"), "the relay logs what it published")
        eventually(lambda: query(relay_only.database_url,
                                 "SELECT count(*) FROM outbox_events WHERE published_at IS NULL") == [(0,)],
                   "the relay marks every row published")
    finally:
        close_all(itertools.chain.from_iterable(tabs.values()))


def test_a_change_overtaken_by_the_next_one_is_filled_from_the_ledger_and_its_completion_still_arrives(cluster):
    """The next change is published before the relay republishes the one left behind: the gateway sees the gap,
    sends the missing ``balance_updated`` from the ledger at once, and the completion when the relay brings it."""
    api, admin = cluster.api, cluster.admin
    lena = api.new_user("lena")
    tabs = open_tabs(cluster.url, lena, 6)
    try:
        left_behind = api.request_topup(lena, 4)["id"]
        commit_without_publishing(cluster.database_url, left_behind, admin.id)
        overtaking = api.top_up(lena, admin, 6)["id"]
        for tab in tabs:
            tab.wait_for_seq(2)
            assert tab.seqs() == [1, 2], f"{tab.label}: {tab.events}"
            assert [e["transactionId"] for e in tab.of("balance_updated")] == [left_behind, overtaking]
        for tab in tabs:
            tab.wait_for("transaction_completed", count=2, timeout=10)
            assert sorted(e["transactionId"] for e in tab.of("transaction_completed")) == sorted(
                [left_behind, overtaking]), f"{tab.label}: {tab.events}"
            assert tab.seqs() == [1, 2]
    finally:
        close_all(tabs)
