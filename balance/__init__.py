"""Live wallet balances for a booking site: ``create_app`` builds the Flask app."""
from __future__ import annotations

import logging
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import auth, caller_gate, cli, config, database, errors, ids, pages, realtime
from .extensions import cors, db, limiter, migrate, socketio


def create_app(test_config: dict | None = None) -> Flask:
    """Build an app from the environment, ``instance/config.py``, then ``test_config`` (last wins)."""
    app = Flask(__name__, instance_relative_config=True,
                template_folder=os.path.join(os.path.dirname(__file__), "..", "templates"),
                static_folder=os.path.join(os.path.dirname(__file__), "..", "static"))
    ids.init_app(app)  # before any route is added: an <int:...> in a URL is held to what a database id can be
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(config.from_environment(dict(os.environ), app.instance_path))
    app.config.from_pyfile("config.py", silent=True)
    if test_config:
        app.config.from_mapping(test_config)
    config.check_secrets(app.config)
    config.check_values(app.config)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", database.engine_options(
        app.config["SQLALCHEMY_DATABASE_URI"], app.config["DATABASE_STATEMENT_TIMEOUT"],
        app.config["DATABASE_LOCK_TIMEOUT"]))
    logging.basicConfig(level=app.config.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(process)d %(levelname)s [%(name)s] %(message)s")

    db.init_app(app)
    with app.app_context():
        database.install_sqlite_hooks(db.engine)
        database.install_postgresql_hooks(db.engine, config.answer_timeout(app.config))
    migrate.init_app(app, db, render_as_batch=True, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    auth.init_app(app)
    caller_gate.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    if app.config["REDIS_URL"]:  # redis-py waits forever by default: a frozen Redis would hold every login
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_timeout": 1, "socket_connect_timeout": 1})
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)
    cors.init_app(app, origins=app.config["FRONTEND_URL"] or [], supports_credentials=True)
    errors.init_app(app)
    cli.init_app(app)

    from .api import auth as auth_api, wallet as wallet_api

    app.register_blueprint(auth_api.bp)
    app.register_blueprint(wallet_api.bp)
    pages.init_app(app)
    realtime.init_app(app)

    @app.get("/healthz")
    def healthz():
        """Liveness for load balancers."""
        return {"status": "ok"}

    _behind_proxies(app, app.config["TRUSTED_PROXIES"])
    return app


def _behind_proxies(app: Flask, hops: int) -> None:
    """Take the client's address and scheme from the ``X-Forwarded-For``/``-Proto`` that ``hops`` proxies add.

    Behind Heroku's router or a load balancer every request comes from the proxy's
    address, so the login limit (per client address) would be one bucket for the whole
    site. Only as many hops as configured are believed: a client can write those headers
    too. Outermost, so the Socket.IO handshake's origin check sees the same.
    """
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
