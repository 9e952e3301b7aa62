"""the pending queue gets a partial index; (status, type) over every transaction goes

The admins' queue asks for pending top-ups oldest first; an index of only those rows
serves it and stays as small as the queue. The old (status, type) index covered every
transaction ever made, and with stale statistics PostgreSQL chose it over the primary
key for the approval's guarded UPDATE (id = ... AND status = 'pending'), scanning every
pending row: 3.4 ms per approval with 23,000 pending rows in a table not yet analysed.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

PENDING = "type = 'topup' AND status = 'pending'"


def upgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_status_type')
    op.create_index('ix_transactions_pending_topups', 'transactions', ['created_at', 'id'],
                    postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))


def downgrade():
    op.drop_index('ix_transactions_pending_topups', table_name='transactions')
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index('ix_transactions_status_type', ['status', 'type'], unique=False)
