"""Setting the stage: an admin, N users with a funded wallet, their tokens, and the pending top-ups to approve.

Users, the admin and each user's opening top-up go through the real services. The
pending top-ups the run will approve (thousands of them) are inserted in one batch as
plain ``pending`` rows: that is all a pending top-up is, and asking for them one by one
through the service would take longer than the run. Tokens are minted with the
server's JWT secret, as ``POST /auth/login`` would.
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

import psycopg

from balance import create_app
from balance.auth import issue_token
from balance.extensions import db
from balance.models import Transaction, utcnow
from balance.services import accounts, wallet

OPENING = "bench opening balance"
OPENING_BALANCE = 10_000_000  # minor units: 100,000.00, enough for every payment of a run
TOPUP_AMOUNT = 10             # currency units per approved top-up (on the wire)
PAYMENT_AMOUNT = 1            # currency units per payment


@dataclass
class Stage:
    admin_token: str
    users: list[dict]               # [{"user_id", "token"}]
    pending: dict[int, list[str]]   # user_id -> pending top-up ids, in the order they will be approved
    warmup_token: str = ""          # a funded user with no sockets, whose changes warm the server up first
    warmup_topups: list[str] = field(default_factory=list)  # that user's pending top-ups, for warm-up approvals


def app_for(database_uri: str, secret: str):
    """An app on the benchmark's database, without Redis: seeding publishes nothing anyone listens to."""
    return create_app({
        "SQLALCHEMY_DATABASE_URI": database_uri, "REDIS_URL": None, "RATELIMIT_STORAGE_URI": "memory://",
        "SECRET_KEY": secret, "JWT_SECRET_KEY": secret, "ENV_NAME": "benchmark",
        "SECRETS_FROM_ENV": {"SECRET_KEY": True, "JWT_SECRET": True}, "FAST_PASSWORD_HASH": True,
    })


def prepare(database_uri: str, secret: str, n_users: int, topups_per_user: int, warmup_topups: int = 0) -> Stage:
    app = app_for(database_uri, secret)
    tag = secrets.token_hex(4)  # a fresh set of accounts per run, even on a reused database
    with app.app_context():
        admin, _ = accounts.make_admin(f"bench-admin-{tag}@example.com", "bench-password")
        admin_id, admin_token = admin.id, issue_token(admin)
        users = []
        for n in range(n_users):
            user = accounts.register(f"bench-{tag}-{n}@example.com", "bench-password", f"Bench {n}")
            users.append({"user_id": user.id, "token": issue_token(user)})
            opening = wallet.request_topup(wallet.RequestTopup(user.id, OPENING_BALANCE, OPENING))
            wallet.process_topup(wallet.ProcessTopup(opening.transaction.id, admin_id, True))
        warm = accounts.register(f"bench-{tag}-warmup@example.com", "bench-password", "Bench warm-up")
        warm_id = warm.id
        warmup_token = issue_token(warm)
        opening = wallet.request_topup(wallet.RequestTopup(warm.id, OPENING_BALANCE, OPENING))
        wallet.process_topup(wallet.ProcessTopup(opening.transaction.id, admin_id, True))
        now = utcnow()
        pending: dict[int, list[str]] = {}
        rows = []
        for u in users + [{"user_id": warm_id, "topups": warmup_topups}]:
            for _ in range(u.get("topups", topups_per_user)):
                tx = Transaction(user_id=u["user_id"], type="topup", status="pending", amount=TOPUP_AMOUNT * 100,
                                 description="bench top-up", created_at=now)
                rows.append(tx)
        db.session.add_all(rows)
        db.session.commit()
        for tx in rows:
            pending.setdefault(tx.user_id, []).append(tx.id)
        warmup_ids = pending.pop(warm_id, [])
        db.session.remove()
        db.engine.dispose()
    analyze(database_uri)
    return Stage(admin_token, users, pending, warmup_token, warmup_ids)


def analyze(database_uri: str) -> None:
    """Refresh the planner's statistics after the bulk load, as autovacuum would a little later.

    Without it the run's first seconds (or all of it, where autovacuum is off) plan
    against an empty table's statistics.
    """
    url = database_uri.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def plan(stage: Stage, rate: float, duration: float, payment_share: float) -> list[dict]:
    """``rate * duration`` changes, users in turn, a payment every ``1/payment_share`` changes, the rest approvals."""
    items, taken = [], {u: 0 for u in stage.pending}
    for i in range(int(round(rate * duration))):
        user = stage.users[i % len(stage.users)]
        k = i // len(stage.users)  # this user's k-th change: each user gets the same mix
        is_payment = int((k + 1) * payment_share) > int(k * payment_share)
        if is_payment:
            items.append({"kind": "pay", "user_id": user["user_id"], "token": user["token"], "amount": PAYMENT_AMOUNT})
        else:
            uid = user["user_id"]
            items.append({"kind": "approve", "user_id": uid, "topup_id": stage.pending[uid][taken[uid]]})
            taken[uid] += 1
    return items


def topups_needed(n_users: int, rate: float, duration: float, payment_share: float) -> int:
    per_user = math.ceil(rate * duration / max(n_users, 1))
    return math.ceil(per_user * (1 - payment_share)) + 1


def committed_changes(database_uri: str, user_ids: list[int]) -> dict[str, tuple[int, str]]:
    """Every balance change of the run the database holds as done: transactionId -> (user_id, "approve"|"pay")."""
    url = database_uri.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, user_id, type FROM transactions WHERE user_id = ANY(%s) AND status = 'success' "
            "AND description IS DISTINCT FROM %s", (user_ids, OPENING)).fetchall()
    return {tx: (user_id, "approve" if kind == "topup" else "pay") for tx, user_id, kind in rows}
