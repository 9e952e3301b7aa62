"""idempotency keys get an index by age, so that keys past their retention can be deleted oldest first

A key's stored answer is only needed while its client may retry the request; kept forever
the table grew by ~600 bytes per keyed change. ``IDEMPOTENCY_RETENTION_HOURS`` now bounds it,
and deleting by age needs this index (without it each pruning pass read the whole table).

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_idempotency_keys_created_at', 'idempotency_keys', ['created_at', 'id'])


def downgrade():
    op.drop_index('ix_idempotency_keys_created_at', table_name='idempotency_keys')
