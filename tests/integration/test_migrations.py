"""The migrations build the schema the models describe (SQLite and PostgreSQL)."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from balance.extensions import db


def test_the_migrated_database_has_every_table_column_and_index_of_the_models(ctx):
    with db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert differences == []


def test_the_pending_queue_index_holds_only_pending_top_ups(ctx):
    indexes = {ix["name"]: ix for ix in inspect(db.engine).get_indexes("transactions")}
    assert "ix_transactions_status_type" not in indexes
    pending = indexes["ix_transactions_pending_topups"]
    assert pending["column_names"] == ["created_at", "id"]
    options = pending.get("dialect_options") or {}
    where = options.get(f"{db.engine.dialect.name}_where")
    assert where is not None and "'pending'" in str(where) and "'topup'" in str(where), options


def test_an_entrys_legs_are_found_by_index_not_by_reading_every_posting(ctx):
    """What PostgreSQL's commit-time balance check asks for every leg of every change (and verify, per entry)."""
    query = "SELECT COALESCE(SUM(amount), 0) FROM postings WHERE entry_id = 1"
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table would be scanned anyway
            plan = " ".join(row[0] for row in conn.execute(text("EXPLAIN " + query)))
        else:
            plan = " ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + query)))
    assert "ix_postings_entry_id" in plan, plan
