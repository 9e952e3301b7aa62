"""transactions(user_id) goes: ix_transactions_user_order (user_id, created_at, id) serves its lookups

Every transaction row paid for both indexes; the composite one, whose first column is
user_id, already answers every query by user (history pages, the FK's checks).

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_user_id')


def downgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index('ix_transactions_user_id', ['user_id'], unique=False)
