"""Redis stops in the middle of a stream of approvals and comes back: the API keeps answering and nothing is lost.

While Redis is down the changes are committed with their outbox rows but cannot be
published, and every worker loses its subscription. When it is back, each worker
replays the outbox rows committed since it lost its subscription and resyncs its
sockets from the ledger, and the outbox relay publishes what was left behind (which
the gateways then drop as repeats). Every tab ends with every ``balance_updated`` and
every ``transaction_completed`` exactly once, in order, and the books are clean.
"""
from __future__ import annotations

import itertools

import pytest

from tests.e2e.clients import close_all, open_spread_tabs
from tests.e2e.servers import BalanceServer, deploy, eventually, query, server_env
from tests.support.proxy import SilencingProxy

pytestmark = pytest.mark.multiprocess

TABS_PER_USER = 4
BEFORE, DURING, AFTER = 4, 5, 3


@pytest.fixture(scope="module")
def deployment(fresh_database, redis_factory, tmp_path_factory):
    redis = redis_factory()
    database_url = fresh_database("outage")
    server = BalanceServer.gunicorn(server_env(database_url, redis.url, workers=3),
                                    tmp_path_factory.mktemp("outage") / "gunicorn.log")
    try:
        yield deploy(server, redis, database_url)
    finally:
        server.stop()


def test_approvals_during_a_redis_outage_reach_every_tab_once_in_order_after_it_returns(deployment):
    api, admin, server = deployment.api, deployment.admin, deployment.server
    users = [api.new_user("outage") for _ in range(2)]
    total = BEFORE + DURING + AFTER
    pending = {u.id: [api.request_topup(u, amount)["id"] for amount in range(1, total + 1)] for u in users}
    tabs = open_spread_tabs(deployment.url, users, TABS_PER_USER)
    everyone = list(itertools.chain.from_iterable(tabs.values()))
    tabs_owner = {tab: owner for owner, group in tabs.items() for tab in group}
    try:
        def approve(upto: int, start: int) -> None:
            for i in range(start, upto):
                for u in users:
                    assert api.decide(admin, pending[u.id][i])["status"] == "success"

        approve(BEFORE, 0)
        for tab in everyone:
            tab.wait_for_seq(BEFORE)

        deployment.redis.stop()
        approve(BEFORE + DURING, BEFORE)
        for u in users:
            assert api.balance(u)["seq"] == BEFORE + DURING, "GET /balance must fall back to the database"
        for tab in everyone:  # its worker lost the subscription: the page must not go on saying "Live"
            tab.wait_for("live_status", count=1, timeout=20)
            assert tab.of("live_status")[0]["live"] is False, tab.of("live_status")
        deployment.redis.start()
        approve(total, BEFORE + DURING)

        expected_balances = list(itertools.accumulate(range(1, total + 1)))
        for tab in everyone:
            tab.wait_for_seq(total, timeout=20)
            assert tab.seqs() == list(range(1, total + 1)), f"{tab.label}: {tab.seqs()}"
            assert [e["newBalance"] for e in tab.of("balance_updated")] == expected_balances
            # completions are not in the ledger: a worker whose subscription was down replays them from the outbox
            mine = pending[tabs_owner[tab]]
            tab.wait_for("transaction_completed", count=total, timeout=20)
            completed = [e["transactionId"] for e in tab.of("transaction_completed")]
            assert completed == mine, f"{tab.label}: {completed}"
            tab.wait_for("live_status", count=2, timeout=20)
            assert [s["live"] for s in tab.of("live_status")] == [False, True], "flowing again, once caught up"

        for u in users:
            (balance, seq), = query(deployment.database_url, "SELECT balance, seq FROM accounts WHERE user_id = %s",
                                    u.id)
            assert (balance, seq) == (sum(range(1, total + 1)) * 100, total)
            for tab in tabs[u.id]:
                assert tab.call("get_current_balance") == {"balance": balance / 100, "seq": seq}

        assert server.pids_that_logged("lost the Redis subscription") == server.pids_that_logged(
            "BalanceGateway initialized and subscribed"), "every worker should have lost and regained Redis"
        eventually(lambda: query(deployment.database_url,
                                 "SELECT count(*) FROM outbox_events WHERE published_at IS NULL") == [(0,)],
                   "the relay has published every outbox row left behind")
    finally:
        close_all(everyone)

    verify = server.flask("ledger", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_subscription_gone_silent_is_noticed_and_the_changes_it_missed_still_reach_every_tab(
        fresh_database, redis_factory, tmp_path):
    """A partition (or a failover behind the same address) leaves each worker's subscription open and quiet: no
    error to react to. The listener pings; a silence it takes for a lost subscription, and catches up."""
    redis = redis_factory()
    proxy = SilencingProxy("127.0.0.1", redis.port)
    database_url = fresh_database("silent")
    server = BalanceServer.gunicorn(server_env(database_url, proxy.url, workers=2), tmp_path / "gunicorn.log",
                                    workers=2)
    tabs = []
    try:
        deployment = deploy(server, redis, database_url)
        api, admin = deployment.api, deployment.admin
        user = api.new_user("silent")
        pending = [api.request_topup(user, amount)["id"] for amount in (1, 2, 3)]
        tabs = open_spread_tabs(deployment.url, [user], 4, workers=2)[user.id]
        api.decide(admin, pending[0])
        for tab in tabs:
            tab.wait_for_seq(1)

        proxy.silence()  # every connection open now carries nothing more; new ones work
        for tx in pending[1:]:
            assert api.decide(admin, tx)["status"] == "success"

        for tab in tabs:
            tab.wait_for_seq(3, timeout=45)
            assert tab.seqs() == [1, 2, 3], f"{tab.label}: {tab.seqs()}"
        assert server.pids_that_logged("lost the Redis subscription (no word from Redis")
    finally:
        close_all(tabs)
        server.stop()
        proxy.close()
