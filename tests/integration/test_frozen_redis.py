"""Redis stops answering without closing anything (frozen, or cut off by a partition): requests stay fast.

Redis is never the truth here (a cache miss reads the database; a change whose publish fails
is published by the outbox relay), so after one call waits out its timeout the request path
leaves Redis alone for a moment instead of waiting two seconds per call; when Redis answers
again, what waited is published and the cache is put right.
"""
from __future__ import annotations

import time

import pytest

from balance.extensions import db
from balance.models import OutboxEvent
from balance.realtime import bus
from balance.realtime.breaker import RedisBreaker
from tests.support.clock import Clock
from tests.support import databases, services
from tests.support.auth import AuthActions
from tests.support.proxy import StallProxy

REDIS_TIMEOUT = 2.0  # the request path's Redis socket timeout (balance.realtime.init_app)


@pytest.fixture
def frozen_redis():
    server = services.RedisServer().start()
    proxy = StallProxy("127.0.0.1", server.port)
    yield proxy
    proxy.close()
    server.close()


def timed(call):
    started = time.monotonic()
    reply = call()
    return reply, time.monotonic() - started


def test_while_redis_is_silent_one_call_waits_out_its_timeout_and_the_rest_go_to_the_database(
        database_uri, frozen_redis):
    app = databases.make_app(database_uri, REDIS_URL=f"redis://127.0.0.1:{frozen_redis.port}/0",
                             RATELIMIT_STORAGE_URI="memory://")
    clock = Clock()  # the breaker's: the cooldown passes when the test says, however slow the machine
    cache = app.extensions["balance.cache"]
    cache.breaker = cache.stats.breaker = RedisBreaker(cooldown=1.0, clock=clock)
    auth = AuthActions(app.test_client())
    _, admin = auth.new_admin()
    user_id, user = auth.new_user()
    auth.fund(user, admin, 1000)
    assert auth.client.get("/balance", headers=user).get_json()["balance"] == 1000  # cached

    frozen_redis.freeze()
    first, waited = timed(lambda: auth.client.get("/balance", headers=user))
    later = [timed(lambda: auth.client.get("/balance", headers=user)) for _ in range(5)]
    paid, paying = timed(lambda: auth.client.post("/transactions/payment", json={"amount": 300}, headers=user))
    after, _ = timed(lambda: auth.client.get("/balance", headers=user))
    frozen_redis.thaw()

    assert first.get_json()["balance"] == 1000 and REDIS_TIMEOUT - 0.2 <= waited < REDIS_TIMEOUT + 2
    assert [reply.get_json()["balance"] for reply, _ in later] == [1000] * 5
    assert max(seconds for _, seconds in later) < 0.5, "no more waits for Redis"
    assert paid.status_code == 201 and paying < 0.5, "the payment is made and answered without Redis"
    assert after.get_json()["balance"] == 700, "read from the database, not a cache that missed the payment"

    clock.now += 1.1  # past the cooldown: the next call finds Redis back
    with app.app_context():
        assert bus.relay_once(app.extensions["balance.publisher"], app.extensions["balance.cache"], 0) == 1
        assert db.session.query(OutboxEvent).filter(OutboxEvent.published_at.is_(None)).count() == 0
        cached = app.extensions["balance.cache"].get(user_id)
        assert cached is not None and (cached.balance, cached.seq) == (70000, 2), "the cache was put right once Redis answered"
        stats = app.extensions["balance.cache"].stats.as_dict()
        db.session.remove()
        db.engine.dispose()
    assert stats["redis_breaks"] == 1 and stats["redis_skipped"] >= 7

