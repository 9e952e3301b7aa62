"""The live balance in a real browser on the production shape: gunicorn with 3 gevent workers, a private Redis,
a fresh PostgreSQL database and the real pages.

With several workers an approval is served by one worker while a user's tabs may hold their sockets on others,
so it reaches them only through Redis; and the pages must use WebSocket alone, since polling would need sticky
sessions. The user's two tabs are made to hold their sockets on two different workers, so whichever worker
serves the approval, at least one tab hears of it from another process.
"""
from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from tests.browser.expectations import expect_each_within
from tests.browser.expectations import live as connected
from tests.e2e.clients import sockets_per_worker
from tests.e2e.servers import BalanceServer, deploy, eventually, server_env
from tests.support import databases, services

pytestmark = [pytest.mark.browser, pytest.mark.multiprocess]

WORKERS = 3
RELOADS = 30  # a new socket usually goes to the worker that took the last one: reload until it does not


@pytest.fixture(scope="module")
def cluster(postgres_server_url, tmp_path_factory):
    """gunicorn, 3 gevent workers, a private Redis and a fresh PostgreSQL database, with an admin made by the CLI."""
    redis = services.RedisServer().start()
    name = f"balance_browser_{os.getpid()}_mw"
    try:
        database_url = databases.create_postgres_database(postgres_server_url, name)
        server = BalanceServer.gunicorn(server_env(database_url, redis.url, workers=WORKERS),
                                        tmp_path_factory.mktemp("multiworker") / "gunicorn.log", workers=WORKERS)
        try:
            yield deploy(server, redis, database_url)
        finally:
            server.stop()
            databases.drop_postgres_database(postgres_server_url, name)
    finally:
        redis.close()


@pytest.fixture(scope="module")
def server(cluster):
    """The browser fixtures' server (``site`` opens its pages and makes its people here) is the cluster."""
    return SimpleNamespace(url=cluster.url, database_uri=cluster.database_url)


def live(page):
    expect(page.locator("#live-status")).to_have_text("Live")
    return connected(page)


def sockets_on_each_worker(cluster, total: int) -> dict[int, int]:
    """Worker pid -> its open sockets, once the workers hold ``total`` sockets between them (a reloaded tab's
    old socket may take a moment to go)."""
    def settled():
        spread = sockets_per_worker(cluster.url, WORKERS)
        return spread if len(spread) == WORKERS and sum(spread.values()) == total else None

    return eventually(settled, f"{total} sockets open on {WORKERS} workers")


def open_on_another_worker(site, cluster, context):
    """A second live tab of the context's user whose socket is not on the same worker as the first tab's."""
    tab = live(site.open(context, "/"))
    for _ in range(RELOADS):
        if max(sockets_on_each_worker(cluster, 2).values()) == 1:
            return tab
        tab.reload()
        live(tab)
    raise AssertionError(f"the second tab's socket stayed on the first tab's worker through {RELOADS} reloads")


def test_an_approval_served_by_any_worker_reaches_both_tabs_of_the_user_on_websocket_and_not_another_users_tab(
        site, cluster):
    api, admin = cluster.api, cluster.admin
    alice, bob = site.user("alice"), site.user("bob")
    trip = site.request_topup(alice, 50, "Trip fund")

    alice_context = site.context()
    polled, websockets = [], []  # HTTP requests to /socket.io/ (long-polling) and WebSocket URLs of alice's tabs
    alice_context.on("request", lambda request: "/socket.io/" in request.url and polled.append(request.url))
    alice_context.on("page", lambda page: page.on("websocket", lambda ws: websockets.append(ws.url)))
    first_tab = live(site.log_in(alice_context, alice))
    second_tab = open_on_another_worker(site, cluster, alice_context)
    bob_tab = live(site.page_for(bob))

    for tab in (first_tab, second_tab, bob_tab):
        expect(tab.locator("body")).to_have_attribute("data-transports", "websocket")
    assert websockets and all("/socket.io/" in url and "transport=websocket" in url for url in websockets), websockets
    assert polled == [], f"the page polled: {polled}"

    for tab in (first_tab, second_tab):
        expect(tab.locator("#balance")).to_have_text("$0.00")
        expect(tab.locator("#transactions tr.tx", has_text="Trip fund").locator(".badge")).to_have_text("Pending")
        tab.evaluate("window.__sameDocument = true")
    expect(bob_tab.locator("#balance")).to_have_text("$0.00")

    started = time.monotonic()
    api.decide(admin, trip)  # a new connection: any of the three workers may serve it
    expect_each_within((first_tab, second_tab), "#balance", "$50.00", started, 2.0)

    for tab in (first_tab, second_tab):
        expect(tab.locator(".toast").first).to_contain_text("+$50.00 · Balance: $50.00")
        expect(tab.locator("#transactions tr.tx", has_text="Trip fund").locator(".badge")).to_have_text("Approved")
        live(tab)
        assert tab.evaluate("window.__sameDocument") is True, "the tab was reloaded"

    # Bob's tab heard nothing of it. Each worker gets the events from Redis in order and a socket gets its own in
    # order, so once a later change of bob's has arrived, anything of alice's sent to him would have arrived first.
    expect(bob_tab.locator("#balance")).to_have_text("$0.00")
    api.top_up(bob, admin, 1)
    expect(bob_tab.locator("#balance")).to_have_text("$1.00")
    expect(bob_tab.locator(".toast-text")).to_have_text(["+$1.00 · Balance: $1.00"])
    expect(bob_tab.locator("#transactions tr.tx")).to_have_count(1)
    expect(bob_tab.locator("#transactions")).not_to_contain_text("Trip fund")
    live(bob_tab)


def test_while_redis_is_down_the_page_says_paused_not_live_and_catches_up_when_it_is_back(site, cluster):
    """Changes reach sockets only through Redis, so that each gets them once and in order: while it is down a tab's
    balance does not move, and saying "Live" over it would be a lie."""
    api, admin = cluster.api, cluster.admin
    carol = site.user("carol")
    tab = live(site.page_for(carol))
    try:
        cluster.redis.stop()
        expect(tab.locator("#live-status")).to_have_text("Paused", timeout=20_000)
        expect(tab.locator("#balance-note")).to_contain_text("Live updates paused")
        expect(tab.get_by_role("button", name="Refresh")).to_be_enabled()
        api.top_up(carol, admin, 7)  # committed; it waits in the outbox
    finally:
        cluster.redis.start()
    expect(tab.locator("#balance")).to_have_text("$7.00", timeout=20_000)
    live(tab)
