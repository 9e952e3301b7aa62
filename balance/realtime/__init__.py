"""From commit to socket: the bus (Redis or in-process), outbox relay, balance cache and the ``/balance`` gateway.

``init_app`` wires the parts to the app; ``start_background_services`` starts the
Redis listener and the outbox relay, and is called only by the serving
entrypoints (``wsgi.py``, ``python app.py``), so CLI commands and tests that just
build an app start nothing.
"""
from __future__ import annotations

import json
import logging
import os

import redis

from .. import housekeeping, runtime
from ..config import ConfigError
from ..extensions import socketio
from . import bus, metrics, origins, sockets
from .cache import LocalBalanceCache, RedisBalanceCache
from .compression import DeclineCompression
from .gateway import Gateway

log = logging.getLogger("BalanceGateway")


def _async_mode() -> str:
    """gevent when the process was patched (production, ``python app.py``), else threads (tests' test client)."""
    try:
        from gevent import monkey

        if monkey.is_module_patched("socket"):
            return "gevent"
    except ImportError:
        pass
    return "threading"


def transports(setting: str, workers: int) -> list[str]:
    """``auto``: websocket only when several workers share a port (polling would need sticky sessions)."""
    setting = (setting or "auto").strip().lower()
    if setting == "auto":
        return ["websocket"] if workers > 1 else ["polling", "websocket"]
    chosen = [t.strip() for t in setting.split(",") if t.strip()]
    if not chosen or any(t not in ("polling", "websocket") for t in chosen):
        raise ConfigError(f"SOCKETIO_TRANSPORTS must be 'auto', 'websocket' or 'polling,websocket', not {setting!r}")
    return chosen


def init_app(app) -> None:
    redis_url = app.config["REDIS_URL"]
    workers = int(app.config.get("WEB_CONCURRENCY") or os.environ.get("WEB_CONCURRENCY", "1"))
    if workers > 1 and not redis_url:
        raise ConfigError(f"{workers} workers (WEB_CONCURRENCY) need REDIS_URL: without it each worker delivers only "
                          "the changes made in it, and the sockets held by the others miss them; set REDIS_URL, "
                          "or run one worker")
    socketio.init_app(
        app,
        async_mode=app.config.get("SOCKETIO_ASYNC_MODE") or _async_mode(),
        message_queue=redis_url,
        channel="flask-socketio",
        cors_allowed_origins=origins.allowed(app.config["FRONTEND_URL"]),
        transports=transports(app.config["SOCKETIO_TRANSPORTS"], workers),
        max_http_buffer_size=app.config.get("MAX_CONTENT_LENGTH") or 65536,  # the HTTP routes' limit, for sockets too
        json=json,
        logger=False,
        engineio_logger=False,
    )
    if not app.config.get("WEBSOCKET_COMPRESSION", False):
        app.wsgi_app = DeclineCompression(app.wsgi_app)
    gateway = Gateway(socketio, app.config["CATCHUP_WINDOW"], app.config.get("MAX_SOCKETS_PER_USER", 50))
    publish_now = app.config.get("OUTBOX_PUBLISH_AFTER_COMMIT", True)
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=30)
        cache = RedisBalanceCache(client, app.config["BALANCE_CACHE_TTL"])
        publisher = bus.Publisher(bus.RedisBus(client, cache), enabled=publish_now)
        app.extensions["balance.redis_url"] = redis_url
    else:
        cache = LocalBalanceCache()
        publisher = bus.Publisher(bus.LocalBus(gateway, cache), enabled=publish_now)
    app.extensions["balance.gateway"] = gateway
    app.extensions["balance.cache"] = cache
    app.extensions["balance.publisher"] = publisher
    sockets.register(socketio)
    app.register_blueprint(metrics.bp)


def start_background_services(app) -> None:
    """Start this worker's Redis listener (if any) and its outbox relay; settle the heap of a serving process."""
    runtime.lean_greenlets()
    runtime.settle_heap()
    gateway = app.extensions["balance.gateway"]
    publisher = app.extensions["balance.publisher"]
    cache = app.extensions["balance.cache"]
    redis_url = app.extensions.get("balance.redis_url")
    if redis_url:
        listener = redis.Redis.from_url(redis_url, socket_connect_timeout=2, health_check_interval=10)
        socketio.start_background_task(bus.listen_forever, app, listener, gateway)
    else:
        log.info("BalanceGateway initialized in-process (no REDIS_URL: one process, no Redis)")
    socketio.start_background_task(publisher.mark_forever, app)
    socketio.start_background_task(sockets.close_expired_forever, socketio, gateway)
    socketio.start_background_task(bus.fill_held_forever, app, gateway)
    socketio.start_background_task(
        bus.relay_forever, app, publisher, cache,
        app.config["OUTBOX_RELAY_INTERVAL"], app.config.get("OUTBOX_RELAY_GRACE", 2.0),
    )
    chosen = housekeeping.prunings(app.config)
    if chosen:
        socketio.start_background_task(housekeeping.prune_forever, app, chosen)
