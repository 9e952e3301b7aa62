"""Server-rendered HTML pages (sign-up, log-in, dashboard, admin): thin views over the same services as the API."""
from __future__ import annotations

import os

from . import admin, assets, auth_pages, dashboard, templating


def init_app(app) -> None:
    """Register the page blueprints, their template helpers and the cookie settings pages rely on."""
    production = app.config.get("ENV_NAME") == "production"
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("SESSION_COOKIE_SECURE", production)
    app.config.setdefault("SOCKETIO_CLIENT_DIR", os.path.join(app.root_path, "..", "node_modules", "socket.io-client",
                                                              "dist"))
    templating.init_app(app)
    for module in (assets, auth_pages, dashboard, admin):
        app.register_blueprint(module.bp)
