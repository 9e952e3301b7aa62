"""One deployment, one currency: a server whose CURRENCY differs from its wallets' refuses to start."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import pytest

from balance.config import ConfigError
from balance.extensions import db
from balance.startup_checks import refuse_another_currency
from tests.support import databases
from tests.support.wallets import new_user

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def apps(database_uri):
    made = []

    def make(**settings):
        made.append(databases.make_app(database_uri, **settings))
        return made[-1]

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_a_server_set_to_another_currency_than_its_wallets_refuses_to_start_and_names_theirs(apps):
    with apps(CURRENCY="USD").app_context():
        new_user()
    with pytest.raises(ConfigError, match=r"CURRENCY is EUR but wallets were opened in USD; .* set CURRENCY=USD"):
        refuse_another_currency(apps(CURRENCY="EUR"))


@pytest.mark.parametrize("wallets", [0, 2])
def test_a_server_in_its_wallets_currency_or_with_no_wallet_yet_starts(apps, wallets):
    with apps(CURRENCY="EUR").app_context():
        for _ in range(wallets):
            new_user()
    refuse_another_currency(apps(CURRENCY="EUR"))


def test_a_database_that_cannot_be_read_at_start_is_said_and_the_start_goes_on(tmp_path, caplog):
    app = databases.make_app(f"sqlite:///{tmp_path}/no/such/dir/balance.sqlite3")
    with caplog.at_level(logging.WARNING, logger="balance.startup_checks"):
        refuse_another_currency(app)
    assert "could not check the wallets' currency at start" in caplog.text
    with app.app_context():
        db.engine.dispose()


def test_python_app_py_with_another_currency_stops_at_once_saying_why(tmp_path):
    path = tmp_path / "balance.sqlite3"
    uri = f"sqlite:///{path}"
    databases.migrate(uri)
    with databases.make_app(uri).app_context():
        new_user()
        db.engine.dispose()
    env = {**os.environ, "DATABASE_URL": uri, "CURRENCY": "EUR", "PORT": "0", "REDIS_URL": ""}
    done = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "not starting: CURRENCY is EUR but wallets were opened in USD" in done.stderr
    assert "Traceback" not in done.stderr
    with databases.make_app(uri).app_context():
        currencies = db.session.execute(db.text("SELECT DISTINCT currency FROM accounts WHERE kind = 'wallet'")).all()
        db.engine.dispose()
    assert currencies == [("USD",)], "the check ran before the demo admin's wallet was opened (in euros)"


def _app_py(tmp_path, **env):
    uri = f"sqlite:///{tmp_path / 'balance.sqlite3'}"
    full = {**os.environ, "DATABASE_URL": uri, "REDIS_URL": "", "PORT": "0", **env}
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("setting", "value", "said"), [
    ("SOCKETIO_TRANSPORTS", "carrier-pigeon", "not starting: SOCKETIO_TRANSPORTS must be 'auto', 'websocket' or "
                                              "'polling,websocket', not 'carrier-pigeon'"),
    ("LOGIN_RATE_LIMIT", "bogus", "not starting: LOGIN_RATE_LIMIT must be a rate such as '10 per minute'"),
], ids=["transports", "login-rate-limit"])
def test_python_app_py_with_a_setting_it_cannot_use_stops_in_one_line_naming_it(tmp_path, setting, value, said):
    done = _app_py(tmp_path, **{setting: value})
    assert done.returncode != 0
    assert said in done.stderr and "Traceback" not in done.stderr


def test_python_app_py_on_a_port_another_program_holds_says_so_and_how_to_choose_another(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        taken.listen()
        done = _app_py(tmp_path, PORT=str(port), HOST="127.0.0.1")
    assert done.returncode != 0
    assert f"not starting: 127.0.0.1:{port} is already in use by another program; set PORT" in done.stderr
    assert "Traceback" not in done.stderr and "is running at" not in done.stdout


@pytest.mark.parametrize(("host", "family"), [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)],
                         ids=["IPv4", "IPv6"])
def test_the_port_check_refuses_a_taken_port_and_lets_a_free_one_through_on_either_address_family(host, family):
    from balance.serve import _refuse_a_taken_port

    with socket.create_server((host, 0), family=family) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"is already in use by another program"):
            _refuse_a_taken_port(host, port)
    _refuse_a_taken_port(host, port)  # free again: no complaint
