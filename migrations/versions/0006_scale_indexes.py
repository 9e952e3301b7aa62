"""two reads that grew with every change get indexes: decided top-ups newest first, the outbox by time

Measured on a ledger of 2,000,000 transactions and 2,760,000 outbox rows (a helper's scale
audit, EXPLAIN ANALYZE on PostgreSQL):

- the admins' decided top-ups (``type = 'topup' AND status <> 'pending'``, newest first,
  paged by ``(created_at, id)``) scanned and sorted every transaction: 150-170 ms a page;
  a partial index of exactly those rows answers it in 0.03 ms;
- a worker that lost its Redis subscription catches up from ``outbox_events`` by
  ``created_at``, which scanned the whole table (210-260 ms); 0.03 ms with the index.

Both are built in the migration's transaction, as 0005's: on large tables that holds writes
to ``transactions`` and ``outbox_events`` for the seconds the builds take (the release step).

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

DECIDED = "type = 'topup' AND status <> 'pending'"


def upgrade():
    op.create_index('ix_transactions_decided_topups', 'transactions', ['created_at', 'id'],
                    postgresql_where=sa.text(DECIDED), sqlite_where=sa.text(DECIDED))
    op.create_index('ix_outbox_created_at', 'outbox_events', ['created_at'])


def downgrade():
    op.drop_index('ix_outbox_created_at', table_name='outbox_events')
    op.drop_index('ix_transactions_decided_topups', table_name='transactions')
