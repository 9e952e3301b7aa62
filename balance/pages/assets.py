"""``/assets/socket.io.min.js``: the official socket.io-client from npm, served from our own origin.

It is installed by ``scripts/setup`` (``npm ci``, pinned in package.json) and never
copied into the repository; without it the pages still work, just not live.
"""
from __future__ import annotations

from flask import Blueprint, current_app, send_from_directory

bp = Blueprint("assets", __name__, url_prefix="/assets")

FILES = ("socket.io.min.js", "socket.io.min.js.map")


@bp.get("/<any(" + ", ".join(f'"{f}"' for f in FILES) + "):name>")
def socketio_client(name):
    """The pinned socket.io-client build (and its source map, for the browser's developer tools)."""
    return send_from_directory(current_app.config["SOCKETIO_CLIENT_DIR"], name, max_age=3600)
