"""Configuration from the environment, read when the app is created (never at import).

``instance/config.py`` may override anything for local use. Outside development
and testing the app refuses to start with a missing or default secret.
"""
from __future__ import annotations

import math
import os
from datetime import timedelta

from limits import parse_many

from .domain.money import parse_limit

ANSWER_MARGIN = 5.0  # seconds past the statement bound that DATABASE_ANSWER_TIMEOUT defaults to
DEV_SECRET = "dev-insecure-secret-change-me-before-deploying"  # noqa: S105 - the known default we refuse in production


class ConfigError(RuntimeError):
    """The environment does not describe a safe, runnable service."""


def database_url(raw: str | None, instance_path: str) -> str:
    """Normalise ``DATABASE_URL``: Heroku's ``postgres://`` and plain ``postgresql://`` go through psycopg 3."""
    if not raw:
        return "sqlite:///" + os.path.join(instance_path, "balance.sqlite3")
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


def flag(raw: str | None, default: bool) -> bool:
    """A yes/no setting: ``1/true/yes/on`` or ``0/false/no/off`` (any case); unset or empty means ``default``."""
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected a yes/no value, not {raw!r}")


def _number(environ: dict[str, str], name: str, default: str, kind: type = int, minimum: float = 0,
            maximum: float = math.inf) -> int | float:
    """A numeric setting; a value that is not one, or outside what the setting can work with, stops the start."""
    raw = environ.get(name, default)
    try:
        value = kind(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a {'whole ' if kind is int else ''}number, not {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {raw!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {raw!r}")
    if value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, not {raw!r}")
    return value


def from_environment(environ: dict[str, str], instance_path: str) -> dict:
    """Build the settings mapping from an environment mapping."""
    env = environ.get("BALANCE_ENV", environ.get("FLASK_ENV", "development"))
    secret = environ.get("SECRET_KEY")
    jwt_secret = environ.get("JWT_SECRET")
    origins = [o.strip() for o in environ.get("FRONTEND_URL", "").split(",") if o.strip()]
    return {
        "ENV_NAME": env,
        "SECRET_KEY": secret or DEV_SECRET,
        "JWT_SECRET_KEY": jwt_secret or DEV_SECRET,
        "SQLALCHEMY_DATABASE_URI": database_url(environ.get("DATABASE_URL"), instance_path),
        "REDIS_URL": environ.get("REDIS_URL") or None,
        "FRONTEND_URL": origins,
        "CURRENCY": environ.get("CURRENCY", "USD").upper(),
        "MAX_TRANSACTION_AMOUNT": environ.get("MAX_TRANSACTION_AMOUNT", "1000000.00"),
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(
            seconds=_number(environ, "JWT_ACCESS_TOKEN_SECONDS", "3600", int, minimum=1)),
        "LOGIN_RATE_LIMIT": environ.get("LOGIN_RATE_LIMIT", "10 per minute"),
        "TRUSTED_PROXIES": _number(environ, "TRUSTED_PROXIES", "0", int),
        # no request of this service needs more; a bigger body is refused (413) before anything reads it
        "MAX_CONTENT_LENGTH": _number(environ, "MAX_REQUEST_BYTES", "65536", int, minimum=1024),
        "SOCKETIO_TRANSPORTS": environ.get("SOCKETIO_TRANSPORTS", "auto"),
        # changes replayed to a socket that comes back (each a packet to that socket; past it, the snapshot alone)
        "CATCHUP_WINDOW": _number(environ, "CATCHUP_WINDOW", "500", int, maximum=10_000),
        "MAX_SOCKETS_PER_USER": _number(environ, "MAX_SOCKETS_PER_USER", "50", int, minimum=1),
        "OUTBOX_RELAY_INTERVAL": _number(environ, "OUTBOX_RELAY_INTERVAL", "1.0", float, minimum=0.01),
        "OUTBOX_RELAY_GRACE": _number(environ, "OUTBOX_RELAY_GRACE", "2.0", float),
        "OUTBOX_PUBLISH_AFTER_COMMIT": flag(environ.get("OUTBOX_PUBLISH_AFTER_COMMIT"), True),
        # published outbox rows are deleted this long after publishing (0: kept forever); at least the longest a
        # worker's subscription may be down and still catch up on events without a seq from the outbox
        "OUTBOX_RETENTION_HOURS": _number(environ, "OUTBOX_RETENTION_HOURS", "24", float, maximum=87_600),
        # idempotency keys are deleted this long after their request (0: kept forever); a retry after it is new
        "IDEMPOTENCY_RETENTION_HOURS": _number(environ, "IDEMPOTENCY_RETENTION_HOURS", "720", float, maximum=87_600),
        "BALANCE_CACHE_TTL": _number(environ, "BALANCE_CACHE_TTL", "3600", int, minimum=1),
        "WEBSOCKET_COMPRESSION": flag(environ.get("WEBSOCKET_COMPRESSION"), False),
        # seconds (0: none); PostgreSQL takes milliseconds up to 2**31 - 1
        "DATABASE_STATEMENT_TIMEOUT": _number(environ, "DATABASE_STATEMENT_TIMEOUT", "30", float, maximum=2_000_000),
        # seconds we wait for PostgreSQL's answer before closing the connection (0: none); unset: see answer_timeout
        "DATABASE_ANSWER_TIMEOUT": (_number(environ, "DATABASE_ANSWER_TIMEOUT", "0", float, maximum=2_000_000)
                                    if environ.get("DATABASE_ANSWER_TIMEOUT", "").strip() else None),
        "DATABASE_LOCK_TIMEOUT": _number(environ, "DATABASE_LOCK_TIMEOUT", "5", float, maximum=2_000_000),
        # wallet-changing requests of one caller running at once in a worker; more wait without a pool connection
        "CALLER_WRITE_CONCURRENCY": _number(environ, "CALLER_WRITE_CONCURRENCY", "4", int, minimum=1, maximum=1000),
    }


def answer_timeout(config: dict) -> float:
    """Seconds to wait for PostgreSQL's answer (0: no bound): ``DATABASE_ANSWER_TIMEOUT``, or by default
    ``ANSWER_MARGIN`` past the statement bound, which a running server applies itself (a frozen server, or a
    partition that drops packets, applies none). Read from the final settings, after ``instance/config.py``."""
    given = config.get("DATABASE_ANSWER_TIMEOUT")
    if given is not None:
        return given
    statement = config.get("DATABASE_STATEMENT_TIMEOUT") or 0
    return statement + ANSWER_MARGIN if statement else 0


def check_values(config: dict) -> None:
    """Settings that are only read when money moves are checked at start, so a typo stops the start, not payments."""
    try:
        parse_limit(config["MAX_TRANSACTION_AMOUNT"])
    except ValueError as exc:
        raise ConfigError(f"MAX_TRANSACTION_AMOUNT: {exc}") from None
    retention = config.get("OUTBOX_RETENTION_HOURS", 0)
    if 0 < retention < 1:  # a worker catching up after a lost subscription reads back at least 20 s
        raise ConfigError(f"OUTBOX_RETENTION_HOURS must be 0 (keep forever) or at least 1, not {retention!r}")
    try:
        if not parse_many(str(config.get("LOGIN_RATE_LIMIT", ""))):
            raise ValueError("empty")
    except ValueError:
        # Flask-Limiter would log it and apply no limit at all to logins
        raise ConfigError(f"LOGIN_RATE_LIMIT must be a rate such as '10 per minute' or '5/minute;100/day', "
                          f"not {config.get('LOGIN_RATE_LIMIT')!r}") from None
    keys = config.get("IDEMPOTENCY_RETENTION_HOURS", 0)
    if 0 < keys < 24:  # clients retry over hours (a phone offline overnight): shorter invites double payments
        raise ConfigError(f"IDEMPOTENCY_RETENTION_HOURS must be 0 (keep forever) or at least 24, not {keys!r}")
    currency = config.get("CURRENCY", "")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isalpha()):
        raise ConfigError(f"CURRENCY must be a three-letter code such as USD, not {currency!r}")


def check_secrets(config: dict) -> None:
    """Refuse to serve money with a guessable secret anywhere but development and tests."""
    if config.get("ENV_NAME") in ("development", "testing") or config.get("TESTING"):
        return
    problems = []
    for name, key in (("SECRET_KEY", "SECRET_KEY"), ("JWT_SECRET", "JWT_SECRET_KEY")):
        value = config.get(key)
        where = name if name == key else f"{name} ({key} in instance/config.py)"
        if value in (None, "", DEV_SECRET):
            problems.append(f"{where} is missing")
        elif len(str(value)) < 16:
            problems.append(f"{where} is too short (16+ characters)")
    if problems:
        raise ConfigError(
            f"refusing to start in {config['ENV_NAME']!r}: " + "; ".join(problems)
            + " (set it in the environment or instance/config.py)"
        )
