"""postings: append-only on SQLite too, and a posting's seq follows its account's kind on both databases

Until now only PostgreSQL kept postings append-only (0001's trigger); on SQLite, the
embedded default, an UPDATE or DELETE of a posting went through and only ``ledger
verify`` noticed afterwards. SQLite triggers refuse both now. (SQLite has no deferred
triggers, so "an entry's legs sum to zero at commit" stays PostgreSQL's and verify's.)

0002 let house postings carry no ``balance_after`` / ``account_seq`` with a CHECK that
the two are both there or both absent; nothing said which postings need them. A wallet
posting without its seq would be invisible to the replay that catches sockets up, and a
house posting with one would claim a place in a sequence that account does not keep.
A trigger on insert now holds each posting to its account's kind.

On SQLite a batch migration that rebuilds ``postings`` drops its triggers: such a
migration must create them again (``SQLITE_TRIGGERS``).

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

SEQ_MISMATCH = "a wallet posting needs its seq and balance_after, a house posting has neither"

SQLITE_TRIGGERS = [
    """CREATE TRIGGER postings_append_only_update BEFORE UPDATE ON postings
       BEGIN SELECT RAISE(ABORT, 'postings are append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER postings_append_only_delete BEFORE DELETE ON postings
       BEGIN SELECT RAISE(ABORT, 'postings are append-only (DELETE refused)'); END""",
    f"""CREATE TRIGGER postings_seq_follows_kind BEFORE INSERT ON postings
       WHEN (NEW.account_seq IS NOT NULL) <> ((SELECT kind FROM accounts WHERE id = NEW.account_id) = 'wallet')
       BEGIN SELECT RAISE(ABORT, '{SEQ_MISMATCH}'); END""",
]

POSTGRES_TRIGGER = f"""
CREATE FUNCTION postings_seq_follows_kind() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.account_seq IS NOT NULL) <> ((SELECT kind FROM accounts WHERE id = NEW.account_id) = 'wallet') THEN
        RAISE EXCEPTION '{SEQ_MISMATCH} (account %)', NEW.account_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER postings_seq_follows_kind BEFORE INSERT ON postings
    FOR EACH ROW EXECUTE FUNCTION postings_seq_follows_kind();
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_TRIGGER)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS postings_seq_follows_kind ON postings;"
                   "DROP FUNCTION IF EXISTS postings_seq_follows_kind();")
    else:
        for name in ("postings_seq_follows_kind", "postings_append_only_delete", "postings_append_only_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
