"""postings(entry_id) gets an index: the commit-time check that an entry balances looked its legs up by scanning

PostgreSQL's deferred ``entry_sums_to_zero`` trigger sums an entry's postings at every
commit, once per leg (``WHERE entry_id = ...``); with no index on ``entry_id`` each sum
read the whole table. Measured with ``bench/floor.py`` on a ledger of 2,000,000 postings:
a payment took 170 ms (p50) instead of 2.9 ms, and it grew with every change ever made.

The index is built in the migration's transaction: on a large table that holds writes to
postings for the seconds the build takes (the migration runs in the release step, before
the new code serves).

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_postings_entry_id', 'postings', ['entry_id'])


def downgrade():
    op.drop_index('ix_postings_entry_id', table_name='postings')
