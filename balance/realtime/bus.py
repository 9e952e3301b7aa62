"""Getting committed outbox rows to every worker's gateway: publish now, relay what is left, listen.

- ``RedisBus``: publishes each message to ``balance:updates``; a subscriber greenlet
  in every worker hands what arrives to that worker's gateway.
- ``LocalBus``: without Redis, the same messages go straight to this process's gateway.

Either way a row is marked published only after the publish succeeded; the relay
picks up rows left unpublished (Redis down, a process that died between commit and
publish) and publishes them again. Repeats are harmless: the gateway drops them.
"""
from __future__ import annotations

import json
import logging
import time

from datetime import timedelta

import redis
from sqlalchemy import select, update

from ..extensions import db
from ..models import OutboxEvent, utcnow
from ..services import outbox, snapshots
from .messages import CHANNEL, InvalidMessage, Message, parse

log = logging.getLogger("BalanceGateway")


def mark_published(ids: list[int]) -> None:
    """Record that these rows reached the bus (a short transaction of its own, outside the request's session)."""
    if not ids:
        return
    with db.engine.begin() as conn:
        conn.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_(ids), OutboxEvent.published_at.is_(None))
            .values(published_at=utcnow())
        )


class LocalBus:
    name = "in-process"

    def __init__(self, gateway, cache):
        self.gateway = gateway
        self.cache = cache

    def send(self, messages: list[dict], snapshot=None) -> bool:
        """Deliver after commit, in the request; a message the gateway would refuse is logged, never raised (the
        change is committed: the request that made it must still be answered with it)."""
        if snapshot is not None:
            self.cache.put(snapshot)
        for m in messages:
            msg = accepted(self.gateway, m)
            if msg is not None:
                self.gateway.deliver(msg)
        return True


class RedisBus:
    """Publishes to ``balance:updates``; a change's cache write rides in the same pipeline, before the publish."""

    name = "redis"

    def __init__(self, client: redis.Redis, cache):
        self.client = client
        self.cache = cache

    def send(self, messages: list[dict], snapshot=None) -> bool:
        breaker = self.cache.breaker
        if not breaker.allows():  # Redis timed out a moment ago: the relay publishes these once it answers
            if snapshot is not None:
                self.cache.failed(snapshot)
            return False
        try:
            with breaker.attempt():
                pipe = self.client.pipeline(transaction=False)
                if snapshot is not None:
                    self.cache.put_in(pipe, snapshot)
                for m in messages:
                    pipe.publish(CHANNEL, json.dumps(m, separators=(",", ":")))
                pipe.execute()
        except redis.RedisError as exc:
            if snapshot is not None:
                self.cache.failed(snapshot)
            log.warning("publishing %d message(s) failed (%s); the outbox relay will retry", len(messages), exc)
            return False
        return True


class Publisher:
    """Called by the services after commit (``outbox.hand_off``).

    Marking rows published is batched by a background task when the background
    services run (one short transaction every ``MARK_INTERVAL`` instead of one per
    change on the request's path); a row whose mark is lost (crash) is published
    once more by the relay, which is harmless.
    """

    MARK_INTERVAL = 0.2

    def __init__(self, bus, enabled: bool = True):
        self.bus = bus
        self.enabled = enabled
        self.stats = {"published": 0, "failed": 0, "relayed": 0}
        self._to_mark: list[int] | None = None

    def publish(self, messages: list[dict], snapshot=None) -> None:
        """Publish a committed change's messages (and write its new balance to the cache first)."""
        if not self.enabled:
            if snapshot is not None:
                self.bus.cache.put(snapshot)
            return
        if not messages and snapshot is None:
            return
        if not self.bus.send(messages, snapshot):
            self.stats["failed"] += len(messages)
            return
        self.stats["published"] += len(messages)
        ids = [m["id"] for m in messages]
        if self._to_mark is not None:
            self._to_mark.extend(ids)
        else:
            self._mark(ids)

    def _mark(self, ids: list[int]) -> None:
        try:
            mark_published(ids)
        except Exception:  # the change is committed and delivered; the relay will publish it once more
            log.exception("could not mark %d outbox row(s) published", len(ids))

    def mark_forever(self, app) -> None:
        self._to_mark = []
        while True:
            time.sleep(self.MARK_INTERVAL)
            ids, self._to_mark = self._to_mark, []
            if ids:
                with app.app_context():
                    self._mark(ids)


def relay_once(publisher: Publisher, cache, older_than: float) -> int:
    """Publish outbox rows still unpublished ``older_than`` seconds after commit; return how many."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    rows = db.session.execute(
        select(OutboxEvent)
        .where(OutboxEvent.published_at.is_(None), OutboxEvent.created_at <= cutoff)
        .order_by(OutboxEvent.id)
        .limit(500)
    ).scalars().all()
    messages = [outbox.message(r) for r in rows]  # before the rollback, which would expire each row and reload it alone
    db.session.rollback()
    if not rows:
        cache.repair(snapshots.from_database)
        return 0
    # The cache first, so a client that reads GET /balance on receiving the event sees the new balance.
    cache.repair(snapshots.from_database)
    for user_id in {m["user_id"] for m in messages if m["user_id"] is not None}:
        cache.put(snapshots.from_database(user_id))
    db.session.rollback()
    if not publisher.bus.send(messages):
        return 0
    mark_published([m["id"] for m in messages])
    publisher.stats["relayed"] += len(messages)
    log.info("outbox relay published %d message(s) left behind", len(messages))
    return len(messages)


def relay_forever(app, publisher: Publisher, cache, interval: float, older_than: float) -> None:
    """A pass every ``interval``. While the database is away every pass fails the same way: the traceback is
    logged once, then a line per pass, and the recovery once (it was 190 tracebacks a minute on 3 workers)."""
    failing = 0
    while True:
        time.sleep(interval)
        try:
            with app.app_context():
                relay_once(publisher, cache, older_than)
        except Exception as exc:
            failing += 1
            if failing == 1:
                log.exception("outbox relay pass failed; will try again every %g s", interval)
            else:
                log.warning("outbox relay pass failed again (%d in a row): %s", failing,
                            str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__)
        else:
            if failing:
                log.info("outbox relay passes work again after %d failed", failing)
            failing = 0


HELD_RETRY_EVERY = 0.5  # seconds between two tries to fill the gaps messages are held behind


def fill_held_forever(app, gateway, interval: float = HELD_RETRY_EVERY) -> None:
    """Messages held behind a gap the ledger could not fill (the database was away) go out once it can be read."""
    while True:
        time.sleep(interval)
        if not gateway.holding:
            continue
        try:
            with app.app_context():
                gateway.fill_held()
        except Exception:
            log.exception("filling held messages' gaps failed; will try again")


def replay_outbox_since(gateway, since) -> int:
    """Deliver, from the outbox table, every change committed since ``since``.

    Used when this worker's subscription was down: messages published meanwhile never
    reached it, including those without a seq (``transaction_failed``...) that the
    ledger cannot rebuild. What it already delivered is dropped by id and seq.
    """
    rows = db.session.execute(
        select(OutboxEvent).where(OutboxEvent.created_at >= since).order_by(OutboxEvent.id).limit(REPLAY_LIMIT)
    ).scalars().all()
    for row in rows:
        msg = accepted(gateway, outbox.message(row))
        if msg is not None:
            gateway.deliver(msg)
    db.session.rollback()
    return len(rows)


def accepted(gateway, raw) -> Message | None:
    """``raw`` parsed, or None (logged and counted) when it is invalid; events this worker does not know are
    logged and counted too. The one gate for what the listener and the outbox replay hand to the gateway."""
    try:
        msg = parse(raw)
    except InvalidMessage as exc:
        gateway.stats["invalid"] += 1
        log.warning("dropped an invalid balance:updates message: %s", exc)
        return None
    if msg.skipped:
        gateway.stats["unknown_events_skipped"] += len(msg.skipped)
        log.warning("skipped event(s) this worker does not know (%s); delivered the rest of the message",
                    ", ".join(msg.skipped))
    return msg


REPLAY_LIMIT = 10000
# How far before the moment the subscription was found broken it may already have been broken
# (a silence is taken for a break after SILENCE_LIMIT, below; a margin on top).
SUBSCRIPTION_DOUBT = timedelta(seconds=20)
PAUSED = "live updates are paused (the update service is away); they catch up when it is back"


# The listener pings Redis when nothing has arrived for PING_AFTER seconds, and takes a silence of SILENCE_LIMIT
# (no message, no pong) for a lost subscription: a partition, or a failover behind the same address, can leave the
# connection open and quiet, and a blocking read on it would wait forever while every socket missed every change.
PING_AFTER, SILENCE_LIMIT = 5.0, 15.0


def listen_forever(app, client: redis.Redis, gateway) -> None:
    """Subscribe to ``balance:updates`` and deliver; after a lost subscription, catch up from the outbox and ledger."""
    backoff, down_since = 0.1, None
    while True:
        pubsub = None
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(CHANNEL)
            log.info("BalanceGateway initialized and subscribed to Redis balance events")
            if down_since is not None:
                with app.app_context():
                    replayed = replay_outbox_since(gateway, down_since)
                    gateway.resync()
                log.info("resubscribed; replayed %d change(s) from the outbox", replayed)
                down_since = None
                gateway.resume()
            backoff = 0.1  # only once caught up: a catch-up failing (the database away too) keeps backing off
            heard = pinged = time.monotonic()
            while True:
                item = pubsub.get_message(timeout=1.0)
                now = time.monotonic()
                if item is not None:
                    heard = now
                    if item.get("type") == "message":
                        msg = accepted(gateway, item["data"])
                        if msg is not None:
                            with app.app_context():
                                gateway.deliver(msg)
                elif now - heard > SILENCE_LIMIT:
                    raise redis.ConnectionError(f"no word from Redis on the subscription for {now - heard:.0f} s")
                elif now - max(heard, pinged) >= PING_AFTER:
                    pubsub.ping("balance-listener")
                    pinged = now
        except redis.RedisError as exc:
            _close_quietly(pubsub)
            if down_since is None:
                log.warning("lost the Redis subscription (%s); retrying", exc)
                down_since = utcnow() - SUBSCRIPTION_DOUBT
                gateway.pause(PAUSED)
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        except Exception:
            log.exception("balance listener failed; restarting it")
            _close_quietly(pubsub)
            if down_since is None:
                down_since = utcnow() - SUBSCRIPTION_DOUBT
                gateway.pause(PAUSED)
            time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


def _close_quietly(pubsub) -> None:
    """Let go of a subscription's connection (it may be dead: nothing to say about that twice)."""
    if pubsub is None:
        return
    try:
        pubsub.close()
    except Exception:  # noqa: BLE001 - the connection is being dropped because it failed
        pass
