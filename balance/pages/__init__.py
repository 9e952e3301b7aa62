"""Server-rendered HTML pages (sign-up, log-in, dashboard, admin): thin views over the same services as the API."""
from __future__ import annotations

import os

from . import admin, assets, auth_pages, dashboard, templating


def init_app(app) -> None:
    """Register the page blueprints, their template helpers and the cookie settings pages rely on."""
    # Flask's own defaults hold these keys (None / False), so setdefault would never apply them.
    if not app.config.get("SESSION_COOKIE_SAMESITE"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if app.config.get("ENV_NAME") == "production":
        app.config["SESSION_COOKIE_SECURE"] = True
    app.config.setdefault("SOCKETIO_CLIENT_DIR", os.path.join(app.root_path, "..", "node_modules", "socket.io-client",
                                                              "dist"))
    templating.init_app(app)
    for module in (assets, auth_pages, dashboard, admin):
        app.register_blueprint(module.bp)
