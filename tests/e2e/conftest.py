"""Fixtures of the end-to-end tests: private Redis servers, fresh PostgreSQL databases, a shared 3-worker gunicorn.

The 3-worker server is shared by every test module that does not break it (each
test makes its own users, so tests cannot see each other's events); the tests that
stop Redis or change how the server publishes start servers of their own.
"""
from __future__ import annotations

import itertools
import os

import pytest

from tests.e2e.servers import BalanceServer, deploy, server_env
from tests.support import databases, services

_databases = itertools.count(1)


def _own_redis() -> services.RedisServer:
    try:
        return services.RedisServer().start()
    except services.ServiceUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def fresh_database(postgres_server_url):
    """A factory of new, migrated PostgreSQL databases on the throwaway server, one per server under test."""

    made = []

    def make(label: str) -> str:
        made.append(f"balance_e2e_{os.getpid()}_{next(_databases)}_{label}")
        return databases.create_postgres_database(postgres_server_url, made[-1])

    yield make
    for name in made:
        databases.drop_postgres_database(postgres_server_url, name)


@pytest.fixture(scope="session")
def redis_factory():
    """Private redis-servers (never a shared one: ``balance:updates`` is one channel for every database number)."""
    started: list[services.RedisServer] = []

    def make() -> services.RedisServer:
        server = _own_redis()
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


@pytest.fixture(scope="session")
def cluster(fresh_database, redis_factory, tmp_path_factory):
    """gunicorn, 3 gevent workers, a private Redis and a fresh PostgreSQL database: the production shape."""
    redis = redis_factory()
    database_url = fresh_database("cluster")
    server = BalanceServer.gunicorn(server_env(database_url, redis.url, workers=3),
                                    tmp_path_factory.mktemp("cluster") / "gunicorn.log", workers=3)
    try:
        yield deploy(server, redis, database_url)
    finally:
        server.stop()
