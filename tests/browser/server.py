"""The app under test, in its own process, as ``python app.py`` serves it: gevent patched first, the real
gateway and outbox relay, ``socketio.run``. Settings come from the environment (the fixture passes a fresh
SQLite file, secrets and a port), so killing this process and starting it again is a real server restart.
"""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

from balance import create_app  # noqa: E402
from balance.extensions import socketio  # noqa: E402
from balance.realtime import start_background_services  # noqa: E402
from balance.serve import AfterWebsocketsNothing  # noqa: E402


def main() -> None:
    app = create_app({"FAST_PASSWORD_HASH": True, "OUTBOX_RELAY_INTERVAL": 0.5})
    start_background_services(app)
    socketio.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_output=False,
                 handler_class=AfterWebsocketsNothing)


if __name__ == "__main__":
    main()
