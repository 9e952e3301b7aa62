"""Databases for tests: a migrated SQLite file per test, or a migrated PostgreSQL database emptied per test.

Both are built by running the real migrations, so the schema under test is the one
that ships (CHECK constraints, unique keys and PostgreSQL's ledger triggers included).
"""
from __future__ import annotations

import shutil

import psycopg
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.engine import make_url

from balance import create_app
from balance.extensions import db

TABLES = "postings, journal_entries, idempotency_keys, outbox_events, transactions, accounts, users"

TEST_CONFIG = {
    "TESTING": True,
    "ENV_NAME": "testing",
    "SECRET_KEY": "test-secret-key-that-is-long-enough-0123",
    "JWT_SECRET_KEY": "test-jwt-secret-that-is-long-enough-0123",
    "FAST_PASSWORD_HASH": True,
    "LOGIN_RATE_LIMIT": "10000 per minute",
    "REDIS_URL": None,
    "RATELIMIT_STORAGE_URI": "memory://",
    "WEB_CONCURRENCY": 1,  # one process here, whatever the shell running the tests says
}


def make_app(database_uri: str, **overrides):
    return create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_uri, **overrides})


def migrate(database_uri: str) -> None:
    app = make_app(database_uri)
    with app.app_context():
        upgrade()
        db.engine.dispose()


def sqlalchemy_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def create_postgres_database(server_url: str, name: str) -> str:
    """(Re)create database ``name`` on the server and return its SQLAlchemy URL, migrated."""
    url = make_url(sqlalchemy_url(server_url))
    with _server(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    uri = url.set(database=name).render_as_string(hide_password=False)
    migrate(uri)
    return uri


def drop_postgres_database(server_url: str, name: str) -> None:
    """Drop what ``create_postgres_database`` made, at the end of its fixture: a server given in
    ``TEST_DATABASE_URL`` keeps no test databases."""
    with _server(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _server(server_url: str) -> psycopg.Connection:
    url = make_url(sqlalchemy_url(server_url))
    admin = url.set(drivername="postgresql", database=url.database or "postgres")
    return psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True)


def empty_postgres(uri: str) -> None:
    app = make_app(uri)
    with app.app_context():
        db.session.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        db.session.commit()
        db.engine.dispose()


def sqlite_template(path: str) -> str:
    migrate(f"sqlite:///{path}")
    return path


def copy_sqlite(template: str, target: str) -> str:
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"
