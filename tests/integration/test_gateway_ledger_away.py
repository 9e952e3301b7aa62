"""A gap the ledger cannot fill at that moment (PostgreSQL gives up on a lock): the message waits, nothing is lost.

Two workers publish one user's changes, so a socket may get seq 3 before seq 2; the gateway
then reads seq 2 from the ledger. Here that read meets a real lock past the lock bound and
fails. Sending seq 3 anyway would make the socket drop seq 2 as a repeat when it came; the
message is held instead, and goes out, in order, once the ledger answers.
"""
from __future__ import annotations

from sqlalchemy import select

from balance.extensions import db
from balance.models import OutboxEvent
from balance.realtime import gateway as gw
from balance.realtime.messages import parse
from balance.services import outbox
from tests.support import databases
from tests.support.locks import Holder
from tests.support.wallets import fund, new_admin, new_user, pay


class RecordingSocketIO:
    def __init__(self):
        self.sent = []

    def emit(self, event, data, to=None, **_):
        self.sent.append((event, data.get("seq") or data.get("transactionId")))


def test_a_message_past_a_gap_is_held_while_the_ledger_is_locked_and_sent_in_order_once_it_answers(postgres_uri):
    databases.empty_postgres(postgres_uri)
    app = databases.make_app(postgres_uri, DATABASE_LOCK_TIMEOUT=0.3)
    with app.app_context():
        admin, user = new_admin(), new_user()
        fund(user, admin, 1000)
        second, third = pay(user, 100).transaction.id, pay(user, 200).transaction.id
        by_seq = {row.seq: parse(outbox.message(row)) for row in db.session.execute(
            select(OutboxEvent).where(OutboxEvent.user_id == user)).scalars()}
        db.session.rollback()
    sio = RecordingSocketIO()
    gateway = gw.Gateway(sio, 500)
    gateway.attach("tab", user, False)
    gateway.sockets["tab"].last_seq = 1  # greeted after the top-up

    holder = Holder(postgres_uri, "LOCK TABLE postings IN ACCESS EXCLUSIVE MODE")
    try:
        with app.app_context():
            gateway.deliver(by_seq[3])  # overtook seq 2; the ledger read waits 0.3 s for the lock and gives up
        with app.app_context():
            gateway.fill_held()  # still locked
        assert sio.sent == [] and gateway.holding == {"tab"}
    finally:
        holder.release()
    with app.app_context():
        gateway.fill_held()
    assert sio.sent == [("balance_updated", 2), ("balance_updated", 3), ("transaction_completed", third)]
    with app.app_context():
        gateway.deliver(by_seq[2])  # the overtaken message itself, at last
    assert sio.sent[3:] == [("transaction_completed", second)], "its balance_updated came from the ledger: not twice"
    assert gateway.sockets["tab"].last_seq == 3 and not gateway.holding
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
