"""house accounts keep no cached balance

Every change of a kind updated the same house account row (topup_funding,
payment_revenue) and held its lock until commit: under load every change queued on
it. A house account's balance is now only the sum of its postings; its postings carry
no balance_after / account_seq.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("UPDATE accounts SET balance = 0, seq = 0 WHERE kind <> 'wallet'")
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_check_constraint('house_keeps_no_cache', "kind = 'wallet' OR (balance = 0 AND seq = 0)")
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.alter_column('balance_after', existing_type=sa.BigInteger(), nullable=True)
        batch_op.alter_column('account_seq', existing_type=sa.BigInteger(), nullable=True)
        batch_op.create_check_constraint('seq_with_balance', "(balance_after IS NULL) = (account_seq IS NULL)")


def downgrade():
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_constraint('ck_postings_seq_with_balance', type_='check')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_constraint('ck_accounts_house_keeps_no_cache', type_='check')
