"""``python app.py``: one process on the embedded defaults, with a demo admin so there is someone to log in as."""
from __future__ import annotations

import errno
import os
import socket

from flask_migrate import upgrade
from gevent.pywsgi import WSGIHandler

from . import create_app
from .config import ConfigError
from .extensions import socketio
from .realtime import start_background_services
from .services import accounts
from .startup_checks import refuse_another_currency


def main() -> None:
    try:
        _serve()
    except ConfigError as exc:  # a setting that cannot serve: one line saying which, not a traceback
        raise SystemExit(f"not starting: {exc}") from None


def _serve() -> None:
    app = create_app()
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    with app.app_context():
        upgrade()
    refuse_another_currency(app)  # before the demo admin: its wallet would be opened in the wrong currency
    demo = app.config["ENV_NAME"] == "development"
    email = os.environ.get("ADMIN_EMAIL", "admin@example.com")
    password = os.environ.get("ADMIN_PASSWORD", "admin-password")
    if demo:
        with app.app_context():
            try:
                accounts.authenticate(email, password)
            except Exception:
                accounts.make_admin(email, password)
    _refuse_a_taken_port(host, port)  # before saying it runs
    login = f"Log in as the admin {email} / {password}, or" if demo else "Log in, or"
    print(f"\n  Balance is running at http://{host}:{port}/\n"
          f"  {login} sign up as a user at http://{host}:{port}/signup\n", flush=True)
    start_background_services(app)
    socketio.run(app, host=host, port=port, log_output=False, handler_class=AfterWebsocketsNothing)


def _refuse_a_taken_port(host: str, port: int) -> None:
    """Another server on the port (a second ``scripts/run``, macOS's AirPlay receiver on 5000): one line saying
    so, instead of the banner and then a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host, port), family=family).close()  # SO_REUSEADDR, as gevent's server binds
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"{host}:{port} is already in use by another program; set PORT to a free port "
                              f"(e.g. PORT=5001 scripts/run)") from None
        # anything else (a host name this check cannot bind as given): the server's own bind will say


class AfterWebsocketsNothing(WSGIHandler):
    """gevent's server, but silent on a connection engine.io took over as a websocket.

    When such a websocket ends, engine.io answers its WSGI call with an empty 200, and
    gevent's server writes that answer onto the connection, after the websocket's closing
    frame: browsers log "Invalid frame header" on every page change. (gunicorn's worker,
    the Procfile's, is told by simple-websocket to write nothing.) An upgrade engine.io
    refused is answered with another status and a body, and still written.
    """

    def process_result(self):
        environ = self.environ
        if (self.code == 200 and environ.get("HTTP_UPGRADE", "").lower() == "websocket"
                and environ.get("PATH_INFO", "").startswith("/socket.io/")
                and "transport=websocket" in environ.get("QUERY_STRING", "")):
            self.close_connection = True
            return
        super().process_result()
