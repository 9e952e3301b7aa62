"""idempotency keys get an index by age, so that keys past their retention can be deleted oldest first

A key's stored answer is only needed while its client may retry the request; kept forever
the table grew by ~600 bytes per keyed change. ``IDEMPOTENCY_RETENTION_HOURS`` now bounds it,
and deleting by age needs this index (without it each pruning pass read the whole table).

On PostgreSQL the index is built ``CONCURRENTLY``, outside the release's transaction: a plain
build blocks every insert into the table (every keyed payment and every page form) for as
long as it takes, and on a table of many millions of keys that outlasts the lock bound
requests live under. A build that failed half-way leaves an invalid index, dropped first
when the migration runs again. Without the statement bound for the build; the session's own
setting is restored after, since ``python app.py`` goes on to serve from the same pool.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

INDEX, TABLE, COLUMNS = 'ix_idempotency_keys_created_at', 'idempotency_keys', ['created_at', 'id']


def _postgresql() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade():
    if not _postgresql():
        op.create_index(INDEX, TABLE, COLUMNS)
        return
    with op.get_context().autocommit_block():
        op.execute('SET statement_timeout = 0')
        try:
            op.execute(f'DROP INDEX CONCURRENTLY IF EXISTS {INDEX}')
            op.create_index(INDEX, TABLE, COLUMNS, postgresql_concurrently=True)
        finally:
            op.execute('RESET statement_timeout')


def downgrade():
    if not _postgresql():
        op.drop_index(INDEX, table_name=TABLE)
        return
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name=TABLE, postgresql_concurrently=True)
