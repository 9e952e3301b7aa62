"""Fixtures shared by every layer: the database matrix (SQLite and PostgreSQL), the app, clients, an auth helper."""
from __future__ import annotations

import os

import pytest

from tests.support import databases, services
from tests.support.auth import AuthActions

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    return services.postgres_url()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return services.redis_url()


@pytest.fixture(scope="session")
def postgres_uri(postgres_server_url):
    name = f"balance_test_{os.getpid()}"
    yield databases.create_postgres_database(postgres_server_url, name)
    databases.drop_postgres_database(postgres_server_url, name)


@pytest.fixture(scope="session")
def sqlite_template_path(tmp_path_factory) -> str:
    return databases.sqlite_template(str(tmp_path_factory.mktemp("sqlite") / "template.sqlite3"))


@pytest.fixture(params=DATABASES)
def database_uri(request, tmp_path) -> str:
    """A freshly migrated, empty database of each kind: every test using it runs on both."""
    if request.param == "sqlite":
        return databases.copy_sqlite(request.getfixturevalue("sqlite_template_path"), str(tmp_path / "test.sqlite3"))
    uri = request.getfixturevalue("postgres_uri")
    databases.empty_postgres(uri)
    return uri


@pytest.fixture
def app(database_uri):
    app = databases.make_app(database_uri)
    yield app
    with app.app_context():
        from balance.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth(client):
    return AuthActions(client)


def pytest_sessionfinish(session, exitstatus):
    """On CI nothing may be skipped: a skipped test there is a failure of the set-up."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
        if skipped:
            reporter.write_line(f"CI=true but {skipped} test(s) were skipped: failing the run", red=True)
            session.exitstatus = 1
