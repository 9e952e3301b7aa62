"""``flask create-admin``, ``flask ledger verify`` and ``flask cache clear``, through Flask's CLI runner."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from balance.extensions import db
from balance.services import snapshots
from tests.support import databases, services

ROOT = Path(__file__).resolve().parents[2]


def test_create_admin_creates_an_admin_who_can_log_in_and_use_admin_routes(runner, client, auth):
    result = runner.invoke(args=["create-admin", "Chief@Example.com", "--password", "chief-password"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("created admin chief@example.com (id ")
    login = auth.login("chief@example.com", "chief-password").get_json()
    assert login["user"]["role"] == "admin"
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    assert client.get("/transactions/topup/pending", headers=headers).status_code == 200
    assert client.get("/balance", headers=headers).get_json()["balance"] == 0, "an admin has a wallet too"


def test_create_admin_promotes_an_existing_user_keeping_their_password_and_money(runner, client, auth):
    _, user = auth.new_user("member@example.com", password="member-pass-1")
    _, admin = auth.new_admin()
    auth.fund(user, admin, 15)

    result = runner.invoke(args=["create-admin", "member@example.com"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("promoted admin member@example.com")
    login = auth.login("member@example.com", "member-pass-1").get_json()
    assert login["user"]["role"] == "admin"
    assert client.get("/balance", headers=user).get_json()["balance"] == 15


def test_create_admin_with_a_password_resets_an_existing_users_password(runner, auth):
    auth.new_user("forgetful@example.com", password="old-password")
    assert runner.invoke(args=["create-admin", "forgetful@example.com", "--password", "new-password"]).exit_code == 0
    assert auth.login("forgetful@example.com", "old-password").status_code == 401
    assert auth.login("forgetful@example.com", "new-password").status_code == 200


def test_create_admin_refuses_a_new_admin_without_a_password(runner, auth):
    result = runner.invoke(args=["create-admin", "nobody@example.com"])
    assert result.exit_code == 1
    assert "needs a password" in result.output
    assert auth.login("nobody@example.com", "").status_code == 400


def test_ledger_verify_exits_0_and_prints_a_summary_when_the_books_balance(runner, auth, client):
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    auth.fund(user, admin, 25)
    client.post("/transactions/payment", json={"amount": 5}, headers=user)

    result = runner.invoke(args=["ledger", "verify"])

    assert result.exit_code == 0, result.output
    assert "accounts: 4  entries: 2  postings: 4  sum of all postings: 0.00" in result.output
    assert "ledger OK" in result.output


def test_ledger_verify_exits_1_and_names_the_account_when_a_cached_balance_drifted(app, runner, auth):
    user_id, user = auth.new_user()
    _, admin = auth.new_admin()
    auth.fund(user, admin, 25)
    with app.app_context():
        db.session.execute(text("UPDATE accounts SET balance = balance - 100 WHERE user_id = :u"), {"u": user_id})
        db.session.commit()

    result = runner.invoke(args=["ledger", "verify"])

    assert result.exit_code == 1
    assert f"DRIFT wallet of user {user_id}: cached 24.00 but postings say 25.00" in result.output, "currency units"
    assert "ledger OK" not in result.output


def test_ledger_verify_on_an_empty_database_is_clean(runner):
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "accounts: 0  entries: 0  postings: 0" in result.output


def test_the_real_flask_command_line_finds_both_commands(database_uri, tmp_path):
    """``flask --app app ...`` as the README and the Procfile run it, in a child process."""
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_uri, "BALANCE_ENV": "development",
           "HOME": str(tmp_path), "FLASK_SKIP_DOTENV": "1"}
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    created = subprocess.run([*flask, "create-admin", "cli@example.com", "--password", "cli-password"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    assert "created admin cli@example.com" in created.stdout
    verified = subprocess.run([*flask, "ledger", "verify"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60)
    assert verified.returncode == 0, verified.stderr
    assert "ledger OK" in verified.stdout


@pytest.mark.parametrize(("email", "password", "complaint"), [
    ("short@example.com", "x", "password: Length must be between 8 and 128."),
    ("not-an-email", "long-enough-1", "email: Not a valid email address."),
    ("a" * 250 + "@example.com", "long-enough-1", "email: Longer than maximum length 254."),
], ids=["a one-letter password", "no email address", "an address too long"])
def test_create_admin_refuses_what_sign_up_refuses(runner, auth, email, password, complaint):
    result = runner.invoke(args=["create-admin", email, "--password", password])
    assert result.exit_code == 1 and f"refused: {complaint}" in result.output, result.output
    assert auth.login(email, password).status_code in (400, 401)


def test_create_admin_refuses_to_reset_an_existing_users_password_to_one_sign_up_refuses(runner, auth):
    auth.new_user("keeper@example.com", password="old-password")
    result = runner.invoke(args=["create-admin", "keeper@example.com", "--password", "short"])
    assert result.exit_code == 1 and "password: Length must be between 8 and 128." in result.output
    assert auth.login("keeper@example.com", "old-password").status_code == 200
    assert auth.login("keeper@example.com", "old-password").get_json()["user"]["role"] == "user"


@pytest.mark.parametrize(("extra", "said"), [
    ([], "promoted admin member2@example.com (id {id}); their password is unchanged"),
    (["--password", "new-password-2"], "promoted admin member2@example.com (id {id}); their password was reset"),
], ids=["without --password", "with --password"])
def test_create_admin_says_whether_a_promoted_users_password_changed(runner, auth, extra, said):
    user_id, _ = auth.new_user("member2@example.com", password="old-password")
    result = runner.invoke(args=["create-admin", "member2@example.com", *extra])
    assert result.exit_code == 0 and said.format(id=user_id) in result.output, result.output


def test_create_admin_on_an_admin_says_they_already_were_one(runner, auth):
    admin_id, _ = auth.new_admin("chief2@example.com")
    result = runner.invoke(args=["create-admin", "chief2@example.com"])
    assert result.exit_code == 0
    assert result.output == f"already an admin: chief2@example.com (id {admin_id}); their password is unchanged\n"


@pytest.fixture
def private_redis():
    server = services.RedisServer().start()
    yield server
    server.close()


def test_cache_clear_deletes_every_cached_balance_and_nothing_else(database_uri, private_redis):
    """After PostgreSQL went back in time (a restore, a failover to a lagging replica) the cache holds balances the
    database no longer has, under user ids it may give to someone else: the operator clears it."""
    app = databases.make_app(database_uri, REDIS_URL=private_redis.url, RATELIMIT_STORAGE_URI="memory://")
    client = redis.Redis.from_url(private_redis.url)
    client.set("someone-elses-key", "kept")
    with app.app_context():
        for user_id in range(1, 1502):  # more than one batch
            snapshots.remember(snapshots.Snapshot(user_id, 100 * user_id, 3, "USD", None))
        db.engine.dispose()
    assert len(list(client.scan_iter(match="balance:cache:*"))) == 1501

    result = app.test_cli_runner().invoke(args=["cache", "clear"])

    assert result.exit_code == 0, result.output
    assert result.output == "deleted 1501 cached balance(s)\n"
    assert list(client.scan_iter(match="balance:cache:*")) == [] and client.get("someone-elses-key") == b"kept"


def test_cache_clear_without_redis_says_there_is_nothing_shared_to_clear(runner):
    result = runner.invoke(args=["cache", "clear"])
    assert result.exit_code == 0
    assert "no REDIS_URL" in result.output


def test_cache_clear_with_redis_away_says_so_in_a_line(database_uri):
    app = databases.make_app(database_uri, REDIS_URL=f"redis://127.0.0.1:{services.free_port()}/0",
                             RATELIMIT_STORAGE_URI="memory://")
    result = app.test_cli_runner().invoke(args=["cache", "clear"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: could not clear the cache: ") and "127.0.0.1" in result.output
    with app.app_context():
        db.engine.dispose()
