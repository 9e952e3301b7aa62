"""``database.together``: independent statements of one transaction in one round trip (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from balance.database import together, write_transaction
from balance.extensions import db
from balance.models import User, utcnow

_users = User.__table__
ADD = insert(_users).returning(_users.c.id)
EMAILS = select(_users.c.email).where(_users.c.email.like(bindparam("pattern"))).order_by(_users.c.email)


def person(email: str) -> dict:
    return {"email": email, "name": None, "password_hash": "x", "role": "user", "created_at": utcnow()}


def test_steps_run_in_order_in_the_transaction_and_each_gives_back_its_rows(ctx):
    with write_transaction():
        added, listed = together((ADD, person("t1@example.com")), (EMAILS, {"pattern": "t1@%"}))
        _, again = together((ADD, person("t2@example.com")), (EMAILS, {"pattern": "t%@example.com"}))
    assert len(added) == 1 and isinstance(added[0][0], int)
    assert listed == [("t1@example.com",)], "a later step sees what an earlier one wrote"
    assert again == [("t1@example.com",), ("t2@example.com",)]
    db.session.rollback()
    assert db.session.execute(EMAILS, {"pattern": "t%@example.com"}).scalars().all() == ["t1@example.com",
                                                                                       "t2@example.com"]


def test_a_unique_key_violation_raises_sqlalchemys_integrity_error_and_nothing_of_the_batch_stays(ctx):
    with write_transaction():
        together((ADD, person("dup@example.com")))
    with pytest.raises(IntegrityError):
        with write_transaction():
            together((ADD, person("before@example.com")), (ADD, person("dup@example.com")))
    assert db.session.execute(EMAILS, {"pattern": "%@example.com"}).scalars().all() == ["dup@example.com"]


def committed_elsewhere(email: str) -> bool:
    """Whether another connection (not this session's) sees the row: i.e. it is committed."""
    with db.engine.connect() as other:
        return other.execute(EMAILS, {"pattern": email}).first() is not None


def test_with_commit_the_change_is_durable_when_the_batch_returns_on_postgresql(ctx):
    on_postgresql = db.engine.dialect.name == "postgresql"
    with write_transaction():
        together((ADD, person("early@example.com")), commit=True)
        assert committed_elsewhere("early@example.com") is on_postgresql, "SQLite commits at the block's end"
    assert committed_elsewhere("early@example.com")


def test_a_statement_after_the_commit_is_refused_and_not_committed(ctx):
    on_postgresql = db.engine.dialect.name == "postgresql"
    late = None
    try:
        with write_transaction():
            together((ADD, person("batch@example.com")), commit=True)
            together((ADD, person("late@example.com")))
    except RuntimeError as refused:
        late = refused
    assert (late is not None) is on_postgresql, "only PostgreSQL commits inside the batch"
    assert committed_elsewhere("batch@example.com")
    assert committed_elsewhere("late@example.com") is not on_postgresql


@pytest.mark.parametrize("name", ["it's 100% %(email)s %s", "'); DROP TABLE users; --", "back\\slash \"quoted\" \x01",
                                  "€ ✓ 名前"])
def test_values_are_bound_as_data_whatever_they_hold(ctx, name):
    with write_transaction():
        [[(user_id,)]] = together((ADD, dict(person("odd@example.com"), name=name)), commit=True)
    stored = db.session.execute(select(_users.c.name).where(_users.c.id == user_id)).scalar_one()
    assert stored == name
    assert db.session.execute(select(_users.c.id)).first() is not None, "users is still there"


def test_a_naive_datetime_is_refused_and_nothing_is_written(ctx):
    naive = dict(person("naive@example.com"), created_at=utcnow().replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive datetime"):
        with write_transaction():
            together((ADD, naive), commit=True)
    assert not committed_elsewhere("naive@example.com")


def test_a_time_in_another_zone_is_stored_as_the_same_instant(ctx):
    from datetime import timedelta, timezone

    at = utcnow().replace(microsecond=0)
    with write_transaction():
        [[(user_id,)]] = together((ADD, dict(person("zone@example.com"),
                                             created_at=at.astimezone(timezone(timedelta(hours=-5))))), commit=True)
    assert db.session.get(User, user_id).created_at == at


@pytest.mark.parametrize("statement, params, why", [
    (insert(_users), {"email": "x@example.com", "password_hash": "x", "role": "user", "name": None},
     "a column left to its Python default"),
    (select(_users.c.id).where(_users.c.id.in_(bindparam("ids", expanding=True))), {"ids": [1, 2]},
     "values bound at execution"),
])
def test_statements_only_sqlalchemys_execution_could_complete_are_refused(ctx, statement, params, why):
    with pytest.raises(ValueError):
        with write_transaction():
            together((statement, params))


def test_orm_changes_left_pending_before_a_write_transaction_are_refused_not_committed_or_dropped(ctx):
    db.session.add(User(**person("pending@example.com")))
    with pytest.raises(RuntimeError, match="before a write_transaction"):
        with write_transaction():
            together((ADD, person("other@example.com")), commit=True)
    db.session.rollback()
    assert not committed_elsewhere("pending@example.com") and not committed_elsewhere("other@example.com")


class Abandon(Exception):
    pass


def test_a_write_transaction_that_opened_with_its_first_batch_commits_nothing_when_abandoned(ctx):
    """On PostgreSQL the first batch carries the BEGIN: without it each batch would commit on its own."""
    with pytest.raises(Abandon):
        with write_transaction() as session:
            together((ADD, person("first@example.com")))
            session.connection().execute(ADD, person("between@example.com"))  # SQLAlchemy's own, in between
            together((ADD, person("second@example.com")))
            raise Abandon
    assert not any(committed_elsewhere(f"{who}@example.com") for who in ("first", "between", "second"))


def test_batches_of_one_write_transaction_fail_together(ctx):
    with write_transaction():
        together((ADD, person("taken@example.com")), commit=True)
    with pytest.raises(IntegrityError):
        with write_transaction():
            together((ADD, person("fine@example.com")))
            together((ADD, person("taken@example.com")), commit=True)
    assert not committed_elsewhere("fine@example.com")


@pytest.mark.parametrize("ending", ["committed in its batch", "committed at the block's end", "rolled back",
                                    "failed in its batch"])
def test_after_any_write_transaction_the_next_orm_unit_of_work_is_still_atomic(ctx, ending):
    """The BEGIN riding with a batch puts psycopg in autocommit for that transaction only; none may outlive it."""
    try:
        with write_transaction():
            together((ADD, person("dup@example.com")), commit=ending == "committed in its batch")
            if ending == "rolled back":
                raise Abandon
            if ending == "failed in its batch":
                together((ADD, person("dup@example.com")))
    except (Abandon, IntegrityError):
        pass
    db.session.add_all([User(**person("orm-a@example.com")), User(**person("orm-a@example.com"))])
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(User(**person("orm-b@example.com")))
    db.session.flush()
    db.session.rollback()
    assert not committed_elsewhere("orm-a@example.com") and not committed_elsewhere("orm-b@example.com")
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            assert conn.connection.driver_connection.autocommit is False
