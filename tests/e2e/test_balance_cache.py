"""The Redis balance cache is only ever a shortcut: a cache that fell behind the ledger never takes a tab backwards.

A cache can lag (a Redis failover to a replica that missed the last writes, a
restore from an older snapshot). A tab that has already been sent ``seq`` N must
never be answered with an older balance by ``get_current_balance``.
"""
from __future__ import annotations

import json

import pytest
import redis

from tests.e2e.clients import Tab, close_all, open_tabs

pytestmark = pytest.mark.multiprocess


def test_a_cache_that_fell_behind_the_ledger_never_takes_a_tabs_balance_backwards(cluster):
    api, admin = cluster.api, cluster.admin
    mia = api.new_user("mia")
    tabs = open_tabs(cluster.url, mia, 3)
    store = redis.Redis.from_url(cluster.redis.url)
    try:
        for amount in (1, 2, 3):
            api.top_up(mia, admin, amount)
        for tab in tabs:
            tab.wait_for_seq(3)

        stale = {"balance": 100, "seq": 1, "currency": "USD", "updated_at": None}
        store.set(f"balance:cache:{mia.id}", json.dumps(stale), ex=3600)

        for tab in tabs:
            assert tab.call("get_current_balance") == {"balance": 6, "seq": 3}
            tab.wait_until(lambda t: t.names().count("balance_initial") == 2, "the second balance_initial")
            assert tab.of("balance_initial")[-1] == {"balance": 6, "seq": 3}
        assert json.loads(store.get(f"balance:cache:{mia.id}"))["seq"] == 3, "the lagging entry is replaced"
    finally:
        store.close()
        close_all(tabs)



def test_a_tab_that_reconnects_with_since_seq_is_never_greeted_with_a_cache_older_than_it(cluster):
    """A returning tab has no seq on the server yet, only the one it names: the snapshot is not older than that."""
    api, admin = cluster.api, cluster.admin
    noor = api.new_user("noor")
    for amount in (1, 2, 3):
        api.top_up(noor, admin, amount)
    store = redis.Redis.from_url(cluster.redis.url)
    tab = Tab("noor, returning")
    try:
        stale = {"balance": 100, "seq": 1, "currency": "USD", "updated_at": None}
        store.set(f"balance:cache:{noor.id}", json.dumps(stale), ex=3600)
        tab.connect(cluster.url, auth={"token": noor.token, "since_seq": 3})
        tab.wait_for("balance_initial")
        assert tab.events == [("balance_initial", {"balance": 6, "seq": 3})]
    finally:
        tab.close()
        store.close()
