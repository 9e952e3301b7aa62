"""gunicorn's own settings for this app: gunicorn reads this file from its working directory.

The app chooses its Socket.IO transports by how many workers share the port
(``SOCKETIO_TRANSPORTS=auto``: long-polling needs sticky sessions, so with several
workers the server is websocket-only), and it learns that number from
``WEB_CONCURRENCY``. The worker count can also come from elsewhere (``--workers``,
``GUNICORN_CMD_ARGS``): when the Procfile once defaulted to two workers with the variable
unset, the app read "1" and kept polling on, and the seed's hook connected and dropped in
a loop. So each worker is told, just before it is forked, how many workers the master runs.
"""
import os


def pre_fork(server, worker):
    os.environ["WEB_CONCURRENCY"] = str(server.num_workers)
