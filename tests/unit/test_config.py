"""Configuration from the environment: database URLs, and refusing to serve money with a guessable secret."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from balance.config import (DEV_SECRET, ConfigError, answer_timeout, check_secrets, check_values, database_url,
                            from_environment)

INSTANCE = "/srv/balance/instance"
STRONG = "s" * 32
STRONG_JWT = "j" * 32


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "sqlite:////srv/balance/instance/balance.sqlite3"),
        ("", "sqlite:////srv/balance/instance/balance.sqlite3"),
        ("postgres://u:p@db.example.com:5432/d1", "postgresql+psycopg://u:p@db.example.com:5432/d1"),
        ("postgresql://u:p@localhost/balance", "postgresql+psycopg://u:p@localhost/balance"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.sqlite3", "sqlite:////tmp/x.sqlite3"),
        ("sqlite://", "sqlite://"),
    ],
    ids=["unset", "empty", "heroku postgres://", "postgresql://", "explicit driver", "sqlite file", "sqlite memory"],
)
def test_database_url_is_normalised_to_a_driver_sqlalchemy_can_use(raw, expected):
    assert database_url(raw, INSTANCE) == expected


def test_defaults_without_any_environment_are_a_runnable_development_setup():
    settings = from_environment({}, INSTANCE)
    assert settings["ENV_NAME"] == "development"
    assert settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert settings["SECRET_KEY"] == settings["JWT_SECRET_KEY"] == DEV_SECRET
    assert settings["REDIS_URL"] is None
    assert settings["FRONTEND_URL"] == []
    assert settings["CURRENCY"] == "USD"
    assert settings["MAX_TRANSACTION_AMOUNT"] == "1000000.00"
    assert settings["JWT_ACCESS_TOKEN_EXPIRES"] == timedelta(hours=1)
    check_secrets(settings)  # development runs on the embedded defaults


def test_settings_are_read_from_the_environment_mapping():
    settings = from_environment(
        {"BALANCE_ENV": "production", "SECRET_KEY": STRONG, "JWT_SECRET": STRONG_JWT, "CURRENCY": "eur",
         "DATABASE_URL": "postgres://h/d", "REDIS_URL": "redis://r:6379/0",
         "FRONTEND_URL": "https://a.example.com, https://b.example.com ,", "JWT_ACCESS_TOKEN_SECONDS": "60"},
        INSTANCE,
    )
    assert settings["ENV_NAME"] == "production"
    assert (settings["SECRET_KEY"], settings["JWT_SECRET_KEY"]) == (STRONG, STRONG_JWT)
    assert settings["CURRENCY"] == "EUR"
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://h/d"
    assert settings["REDIS_URL"] == "redis://r:6379/0"
    assert settings["FRONTEND_URL"] == ["https://a.example.com", "https://b.example.com"]
    assert settings["JWT_ACCESS_TOKEN_EXPIRES"] == timedelta(seconds=60)
    check_secrets(settings)


@pytest.mark.parametrize(
    ("environ", "named", "not_named"),
    [
        ({}, ["SECRET_KEY", "JWT_SECRET"], []),
        ({"SECRET_KEY": STRONG}, ["JWT_SECRET"], ["SECRET_KEY"]),
        ({"JWT_SECRET": STRONG_JWT}, ["SECRET_KEY"], ["JWT_SECRET"]),
        ({"SECRET_KEY": DEV_SECRET, "JWT_SECRET": STRONG_JWT}, ["SECRET_KEY"], ["JWT_SECRET"]),
        ({"SECRET_KEY": STRONG, "JWT_SECRET": DEV_SECRET}, ["JWT_SECRET"], ["SECRET_KEY"]),
        ({"SECRET_KEY": "short", "JWT_SECRET": STRONG_JWT}, ["SECRET_KEY"], ["JWT_SECRET"]),
        ({"SECRET_KEY": STRONG, "JWT_SECRET": "x" * 15}, ["JWT_SECRET"], ["SECRET_KEY"]),
        ({"SECRET_KEY": "", "JWT_SECRET": ""}, ["SECRET_KEY", "JWT_SECRET"], []),
    ],
    ids=["both missing", "jwt missing", "secret key missing", "secret key default", "jwt default",
         "secret key short", "jwt 15 chars", "both empty"],
)
@pytest.mark.parametrize("env_name", ["production", "staging"])
def test_outside_development_a_missing_default_or_short_secret_is_refused_by_name(environ, named, not_named,
                                                                                    env_name):
    settings = from_environment({"BALANCE_ENV": env_name, **environ}, INSTANCE)
    with pytest.raises(ConfigError) as refused:
        check_secrets(settings)
    message = str(refused.value)
    assert env_name in message
    for name in named:
        assert re.search(rf"\b{name}\b", message)
    for name in not_named:
        assert not re.search(rf"\b{name}\b", message)
    if "JWT_SECRET" in named:  # instance/config.py takes Flask's names: the message says which
        assert "JWT_SECRET (JWT_SECRET_KEY in instance/config.py)" in message


def test_flask_env_names_the_environment_when_balance_env_is_not_set():
    settings = from_environment({"FLASK_ENV": "production"}, INSTANCE)
    with pytest.raises(ConfigError):
        check_secrets(settings)


@pytest.mark.parametrize("env_name", ["development", "testing"])
def test_development_and_testing_may_run_on_the_default_secret(env_name):
    check_secrets(from_environment({"BALANCE_ENV": env_name}, INSTANCE))


def test_a_testing_app_may_run_on_the_default_secret_whatever_its_env_name():
    check_secrets({**from_environment({"BALANCE_ENV": "production"}, INSTANCE), "TESTING": True})


def test_sixteen_characters_is_strong_enough():
    check_secrets(from_environment({"BALANCE_ENV": "production", "SECRET_KEY": "k" * 16, "JWT_SECRET": "j" * 16},
                                   INSTANCE))


def test_secrets_set_in_instance_config_count_as_set_outside_development():
    """instance/config.py is a documented override, so a secret there is as good as one in the environment."""
    settings = from_environment({"BALANCE_ENV": "production"}, INSTANCE)
    settings.update({"SECRET_KEY": "s" * 32, "JWT_SECRET_KEY": "j" * 32})
    check_secrets(settings)


@pytest.mark.parametrize(("name", "value", "said"), [
    ("CATCHUP_WINDOW", "abc", "CATCHUP_WINDOW must be a whole number, not 'abc'"),
    ("MAX_SOCKETS_PER_USER", "2.5", "MAX_SOCKETS_PER_USER must be a whole number, not '2.5'"),
    ("TRUSTED_PROXIES", "-1", "TRUSTED_PROXIES must be at least 0, not '-1'"),
    ("OUTBOX_RELAY_INTERVAL", "soon", "OUTBOX_RELAY_INTERVAL must be a number, not 'soon'"),
    ("OUTBOX_RELAY_GRACE", "nan", "OUTBOX_RELAY_GRACE must be a finite number, not 'nan'"),
    ("OUTBOX_RELAY_INTERVAL", "inf", "OUTBOX_RELAY_INTERVAL must be a finite number, not 'inf'"),
    ("OUTBOX_RETENTION_HOURS", "1e400", "OUTBOX_RETENTION_HOURS must be a finite number, not '1e400'"),
    ("OUTBOX_RELAY_INTERVAL", "0", "OUTBOX_RELAY_INTERVAL must be at least 0.01, not '0'"),
    ("MAX_SOCKETS_PER_USER", "0", "MAX_SOCKETS_PER_USER must be at least 1, not '0'"),
    ("MAX_REQUEST_BYTES", "0", "MAX_REQUEST_BYTES must be at least 1024, not '0'"),
    ("JWT_ACCESS_TOKEN_SECONDS", "0", "JWT_ACCESS_TOKEN_SECONDS must be at least 1, not '0'"),
    ("BALANCE_CACHE_TTL", "0", "BALANCE_CACHE_TTL must be at least 1, not '0'"),
    ("DATABASE_STATEMENT_TIMEOUT", "30s", "DATABASE_STATEMENT_TIMEOUT must be a number, not '30s'"),
    ("DATABASE_STATEMENT_TIMEOUT", "-1", "DATABASE_STATEMENT_TIMEOUT must be at least 0, not '-1'"),
    ("DATABASE_STATEMENT_TIMEOUT", "1e9", "DATABASE_STATEMENT_TIMEOUT must be at most 2000000, not '1e9'"),
    ("DATABASE_LOCK_TIMEOUT", "five", "DATABASE_LOCK_TIMEOUT must be a number, not 'five'"),
    ("DATABASE_ANSWER_TIMEOUT", "-5", "DATABASE_ANSWER_TIMEOUT must be at least 0, not '-5'"),
    ("DATABASE_ANSWER_TIMEOUT", "soon", "DATABASE_ANSWER_TIMEOUT must be a number, not 'soon'"),
    ("OUTBOX_RETENTION_HOURS", "-24", "OUTBOX_RETENTION_HOURS must be at least 0, not '-24'"),
    ("OUTBOX_RETENTION_HOURS", "1e9", "OUTBOX_RETENTION_HOURS must be at most 87600, not '1e9'"),
    ("DATABASE_LOCK_TIMEOUT", "3e6", "DATABASE_LOCK_TIMEOUT must be at most 2000000, not '3e6'"),
    ("CATCHUP_WINDOW", "20000", "CATCHUP_WINDOW must be at most 10000, not '20000'"),
    ("CALLER_WRITE_CONCURRENCY", "0", "CALLER_WRITE_CONCURRENCY must be at least 1, not '0'"),
    ("IDEMPOTENCY_RETENTION_HOURS", "-1", "IDEMPOTENCY_RETENTION_HOURS must be at least 0, not '-1'"),
    ("CALLER_WRITE_CONCURRENCY", "four", "CALLER_WRITE_CONCURRENCY must be a whole number, not 'four'"),
])
def test_a_numeric_setting_that_is_not_a_fitting_number_stops_the_start_naming_the_variable(name, value, said):
    with pytest.raises(ConfigError, match=said.replace(".", r"\.")):
        from_environment({name: value}, INSTANCE)


def test_numeric_settings_may_carry_spaces_around_them():
    assert from_environment({"CATCHUP_WINDOW": " 20 "}, INSTANCE)["CATCHUP_WINDOW"] == 20


@pytest.mark.parametrize(("name", "value", "said"), [
    ("LOGIN_RATE_LIMIT", "bogus", "LOGIN_RATE_LIMIT must be a rate such as '10 per minute'"),
    ("LOGIN_RATE_LIMIT", "", "LOGIN_RATE_LIMIT must be a rate such as '10 per minute'"),
    ("LOGIN_RATE_LIMIT", "10 per fortnight", "not '10 per fortnight'"),
    ("MAX_TRANSACTION_AMOUNT", "abc", "MAX_TRANSACTION_AMOUNT: not a positive amount"),
    ("MAX_TRANSACTION_AMOUNT", "0", "MAX_TRANSACTION_AMOUNT: not a positive amount"),
    ("MAX_TRANSACTION_AMOUNT", "10.001", "MAX_TRANSACTION_AMOUNT: not a positive amount"),
    ("CURRENCY", "dollars", "CURRENCY must be a three-letter code such as USD, not 'DOLLARS'"),
    ("CURRENCY", "U$D", "CURRENCY must be a three-letter code"),
    ("OUTBOX_RETENTION_HOURS", "0.001", "OUTBOX_RETENTION_HOURS must be 0 (keep forever) or at least 1, not 0.001"),
    ("IDEMPOTENCY_RETENTION_HOURS", "12", "IDEMPOTENCY_RETENTION_HOURS must be 0 (keep forever) or at least 24"),
])
def test_a_setting_read_only_when_money_moves_is_checked_at_start(name, value, said):
    settings = from_environment({name: value}, INSTANCE)
    with pytest.raises(ConfigError, match=re.escape(said)):
        check_values(settings)


def test_the_default_settings_pass_the_start_checks():
    check_values(from_environment({}, INSTANCE))


@pytest.mark.parametrize(("environ", "instance", "seconds"), [
    ({}, {}, 35),  # five seconds past the statement bound: a running server always answers first
    ({"DATABASE_STATEMENT_TIMEOUT": "2.5"}, {}, 7.5),
    ({"DATABASE_STATEMENT_TIMEOUT": "0"}, {}, 0),  # no statement bound: no bound on its answer either
    ({"DATABASE_ANSWER_TIMEOUT": "12"}, {}, 12),
    ({"DATABASE_ANSWER_TIMEOUT": " 0 "}, {}, 0),
    ({"DATABASE_ANSWER_TIMEOUT": ""}, {}, 35),
    ({}, {"DATABASE_STATEMENT_TIMEOUT": 120}, 125),  # instance/config.py's statement bound counts too
    ({"DATABASE_STATEMENT_TIMEOUT": "120"}, {"DATABASE_ANSWER_TIMEOUT": 60}, 60),
], ids=["default", "follows-statement", "no-statement-bound", "given", "given-off", "empty-is-unset",
        "instance-statement", "instance-answer"])
def test_the_wait_for_postgresqls_answer_defaults_to_just_past_the_statement_bound(environ, instance, seconds):
    settings = {**from_environment(environ, INSTANCE), **instance}
    assert answer_timeout(settings) == seconds


@pytest.mark.parametrize("rate", ["10 per minute", "5/minute;100/day", "3 per second"])
def test_a_login_rate_limit_flask_limiter_can_read_passes_the_start_checks(rate):
    check_values(from_environment({"LOGIN_RATE_LIMIT": rate}, INSTANCE))
