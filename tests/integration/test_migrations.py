"""The migrations build the schema the models describe (SQLite and PostgreSQL)."""
from __future__ import annotations

import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from balance.extensions import db


def test_the_migrated_database_has_every_table_column_and_index_of_the_models(ctx):
    with db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert differences == []


@pytest.mark.parametrize("name, status", [
    ("ix_transactions_pending_topups", re.compile(r"status\)?(::\w+)?\s*=\s*'pending'")),
    ("ix_transactions_decided_topups", re.compile(r"status\)?(::\w+)?\s*(<>|!=)\s*'pending'")),
])
def test_the_top_up_queues_indexes_hold_only_their_own_rows(ctx, name, status):
    """(Alembic's comparison of the schema with the models does not look at an index's WHERE: this does.)"""
    indexes = {ix["name"]: ix for ix in inspect(db.engine).get_indexes("transactions")}
    assert "ix_transactions_status_type" not in indexes
    assert indexes[name]["column_names"] == ["created_at", "id"]
    options = indexes[name].get("dialect_options") or {}
    where = str(options.get(f"{db.engine.dialect.name}_where"))
    assert "'topup'" in where and status.search(where), options


@pytest.mark.parametrize("query, index", [
    # PostgreSQL's commit-time balance check, for every leg of every change
    ("SELECT COALESCE(SUM(amount), 0) FROM postings WHERE entry_id = 1", "ix_postings_entry_id"),
    # the admins' decided top-ups, a page deep (as admin_views.processed asks)
    ("SELECT id FROM transactions WHERE type = 'topup' AND status <> 'pending'"
     " AND (created_at, id) < ('2026-01-02 00:00:00+00:00', 'x') ORDER BY created_at DESC, id DESC LIMIT 21",
     "ix_transactions_decided_topups"),
    # a worker catching up from the outbox after a lost subscription
    ("SELECT id FROM outbox_events WHERE created_at >= '2026-01-02 00:00:00+00:00'", "ix_outbox_created_at"),
    # pruning idempotency keys past their retention, oldest first
    ("SELECT id FROM idempotency_keys WHERE created_at < '2026-01-02 00:00:00+00:00'"
     " ORDER BY created_at, id LIMIT 1000", "ix_idempotency_keys_created_at"),
], ids=["entry-legs", "decided-topups", "outbox-since", "old-idempotency-keys"])
def test_reads_that_would_grow_with_the_ledger_are_answered_by_an_index(ctx, query, index):
    """Each of these ran once per change or per page; without its index it read the whole table."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table would be scanned anyway
            plan = " ".join(row[0] for row in conn.execute(text("EXPLAIN " + query)))
        else:
            plan = " ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + query)))
    assert index in plan, plan


def test_the_index_built_outside_the_release_transaction_leaves_the_pool_with_its_statement_bound(postgres_uri):
    """0008 builds concurrently in autocommit with no statement bound; the app that ran it (python app.py) then
    serves from the same pool, whose connections must still have their bound."""
    from flask_migrate import downgrade, upgrade

    from tests.support import databases

    app = databases.make_app(postgres_uri)
    with app.app_context():
        downgrade(revision="0007")
        upgrade()
        bounds = {db.session.execute(text("SHOW statement_timeout")).scalar() for _ in range(3)}
        index = db.session.execute(text(
            "SELECT indisvalid FROM pg_index JOIN pg_class ON pg_class.oid = indexrelid"
            " WHERE relname = 'ix_idempotency_keys_created_at'")).scalar()
        db.session.rollback()
        db.engine.dispose()
    assert bounds == {"30s"} and index is True
