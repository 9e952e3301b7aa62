"""Another service may publish on ``balance:updates`` (even ``redis-cli PUBLISH``): valid messages reach that user's
tabs, on every worker; invalid ones are logged and dropped by every worker, and delivery goes on.

The message format is the one documented in ``balance/realtime/messages.py``.
"""
from __future__ import annotations

import json

import pytest
import redis

from tests.e2e.clients import close_all, open_tabs
from tests.e2e.servers import commit_without_publishing, eventually, query

pytestmark = pytest.mark.multiprocess

CHANNEL = "balance:updates"
WORKERS = 3


@pytest.fixture
def publisher(cluster):
    client = redis.Redis.from_url(cluster.redis.url)
    yield client
    client.close()


@pytest.fixture
def two_users(cluster):
    api = cluster.api
    henry, ivy = api.new_user("henry"), api.new_user("ivy")
    tabs = {henry.id: open_tabs(cluster.url, henry, 6), ivy.id: open_tabs(cluster.url, ivy, 3)}
    yield henry, ivy, tabs
    for group in tabs.values():
        close_all(group)


def test_a_valid_message_from_another_service_reaches_every_tab_of_that_user_and_no_other(cluster, publisher,
                                                                                        two_users):
    henry, ivy, tabs = two_users
    notice = {"transactionId": "booking-42", "transactionType": "payment", "amount": 12,
              "reason": "room no longer available", "timestamp": "2030-01-01T00:00:00.000Z"}
    message = {"audience": "user", "user_id": henry.id, "seq": None,
               "events": [{"event": "transaction_failed", "data": notice}]}
    assert publisher.publish(CHANNEL, json.dumps(message)) == WORKERS, "every worker listens on balance:updates"

    for tab in tabs[henry.id]:
        tab.wait_for("transaction_failed")
        assert tab.events[1:] == [("transaction_failed", notice)]

    # a balance change committed elsewhere and announced by its own publisher (no outbox id): once, even though
    # the outbox relay publishes the same change again a moment later
    pending = cluster.api.request_topup(henry, 8)["id"]
    commit_without_publishing(cluster.database_url, pending, cluster.admin.id)
    change = {"newBalance": 8, "previousBalance": 0, "transactionId": pending, "transactionType": "topup",
              "amount": 8, "timestamp": "2030-01-01T00:00:01.000Z", "seq": 1}
    publisher.publish(CHANNEL, json.dumps({"user_id": henry.id, "seq": 1,
                                           "events": [{"event": "balance_updated", "data": change}]}))
    eventually(lambda: query(cluster.database_url, "SELECT published_at FROM outbox_events "
                             "WHERE user_id = %s AND seq = 1", henry.id)[0][0], "the relay republishes the change")
    cluster.api.top_up(henry, cluster.admin, 1)  # published after the relay's copy, so it arrives after it too
    for tab in tabs[henry.id]:
        tab.wait_for_seq(2)
        tab.wait_for("transaction_completed")  # the change's second event, sent just after its balance_updated
        assert tab.names() == ["balance_initial", "transaction_failed", "transaction_created", "balance_updated",
                               "transaction_created", "balance_updated", "transaction_completed"], tab.events
        assert tab.of("balance_updated")[0] == change

    for tab in tabs[ivy.id]:
        assert tab.events == [("balance_initial", {"balance": 0, "seq": 0})]


def invalid_messages(user_id: int) -> dict[str, bytes | str]:
    failed = {"transactionId": "booking-1", "transactionType": "payment", "amount": 1, "reason": "x",
              "timestamp": "2030-01-01T00:00:00.000Z"}

    def msg(**fields) -> str:
        return json.dumps({"audience": "user", "user_id": user_id, "seq": None,
                           "events": [{"event": "transaction_failed", "data": failed}], **fields})

    change = {"newBalance": 1000000, "previousBalance": 0, "transactionId": "booking-1", "transactionType": "topup",
              "amount": 1000000, "timestamp": "2030-01-01T00:00:00.000Z", "seq": 7}
    updated = {"event": "balance_updated", "data": change}
    return {
        "not JSON": b"{not json",
        "not UTF-8": b"\xff\xfe\xfd",
        "a JSON array": "[1, 2, 3]",
        "JSON null": "null",
        "unknown audience": msg(audience="everyone"),
        "user id as a string": msg(user_id=str(user_id)),
        "user id as a boolean": msg(user_id=True),
        "no user id": msg(user_id=None),
        "no events": msg(events=[]),
        "events not a list": msg(events={"event": "transaction_failed"}),
        "unknown event": msg(events=[{"event": "drop_tables", "data": {}}]),
        "data not an object": msg(events=[{"event": "transaction_failed", "data": "x"}]),
        "balance_updated without seq": msg(events=[updated]),
        "seq zero": msg(seq=0, events=[dict(updated, data={**change, "seq": 0})]),
        "seq not matching its data": msg(seq=6, events=[updated]),
        "an admins' event to a user": msg(events=[{"event": "topup_requested", "data": {}}]),
        "a user's event to the admins": msg(audience="admins", user_id=None),
        "id not a number": msg(id="abc"),
        "a balance that is not a number": msg(seq=7, events=[dict(updated, data={**change, "newBalance": "1e6"})]),
        "a field clients read left out": msg(events=[{"event": "transaction_failed", "data": {"reason": "x"}}]),
        "NaN, which is not JSON": msg(seq=7, events=[updated]).replace("1000000,", "NaN,", 1),
    }


def test_invalid_messages_are_dropped_by_every_worker_and_the_next_valid_change_still_arrives(cluster, publisher,
                                                                                              two_users):
    henry, _, tabs = two_users
    server = cluster.server
    dropped_before = server.count_logged("dropped an invalid balance:updates message")
    invalid = invalid_messages(henry.id)
    for raw in invalid.values():
        assert publisher.publish(CHANNEL, raw) == WORKERS

    tx = cluster.api.top_up(henry, cluster.admin, 3)
    for tab in tabs[henry.id]:
        tab.wait_for("transaction_completed")
        assert tab.names() == ["balance_initial", "transaction_created", "balance_updated", "transaction_completed"], \
            tab.events
        assert tab.of("balance_updated")[0]["transactionId"] == tx["id"]
    eventually(lambda: server.count_logged("dropped an invalid balance:updates message") - dropped_before
               == WORKERS * len(invalid), f"each of the {WORKERS} workers logs each of the {len(invalid)} drops")


def test_an_event_unknown_to_the_workers_is_skipped_and_the_rest_of_its_message_still_arrives(cluster, publisher,
                                                                                              two_users):
    """What a worker still on older code does with a message from newer code during a rolling deploy."""
    henry, ivy, tabs = two_users
    server = cluster.server
    skipped_before = server.count_logged("skipped event(s) this worker does not know (loyalty_points_earned)")
    notice = {"transactionId": "booking-43", "transactionType": "payment", "amount": 5,
              "reason": "card declined", "timestamp": "2030-01-01T00:00:00.000Z"}
    message = {"audience": "user", "user_id": henry.id, "seq": None,
               "events": [{"event": "loyalty_points_earned", "data": {"points": 3}},
                          {"event": "transaction_failed", "data": notice}]}
    assert publisher.publish(CHANNEL, json.dumps(message)) == WORKERS

    for tab in tabs[henry.id]:
        tab.wait_for("transaction_failed")
        assert tab.events[1:] == [("transaction_failed", notice)]
    eventually(lambda: server.count_logged("skipped event(s) this worker does not know (loyalty_points_earned)")
               - skipped_before == WORKERS, "each worker logs what it skipped")
    for tab in tabs[ivy.id]:
        assert tab.names() == ["balance_initial"]


def made_up_change(user_id: int, seq: int) -> str:
    change = {"newBalance": 1000000, "previousBalance": 0, "transactionId": "made-up", "transactionType": "topup",
              "amount": 1000000, "timestamp": "2030-01-01T00:00:00.000Z", "seq": seq}
    return json.dumps({"user_id": user_id, "seq": seq, "events": [{"event": "balance_updated", "data": change}]})


def test_a_message_whose_seq_is_ahead_of_the_ledger_is_dropped_and_the_real_changes_still_arrive(cluster, publisher,
                                                                                                 two_users):
    """A seq past the socket's is a gap to fill from the ledger; when the ledger has no such change, the seq was
    made up, and taking it would have made each tab drop the real changes up to it as repeats."""
    henry, _, tabs = two_users
    cluster.api.top_up(henry, cluster.admin, 1)
    for tab in tabs[henry.id]:
        tab.wait_for_seq(1)
    assert publisher.publish(CHANNEL, made_up_change(henry.id, 12)) == WORKERS
    for seq, amount in ((2, 2), (3, 3)):
        cluster.api.top_up(henry, cluster.admin, amount)
    for tab in tabs[henry.id]:
        tab.wait_for_seq(3)
        assert tab.seqs() == [1, 2, 3] and "made-up" not in [e["transactionId"] for e in tab.of("balance_updated")]
    assert cluster.server.count_logged(f"dropped a message for user {henry.id} with seq 12: the ledger has no such "
                                       "change") >= 1


def test_a_tab_that_took_a_made_up_next_seq_is_put_back_on_the_ledgers_by_get_current_balance(cluster, publisher,
                                                                                             two_users):
    """The next seq cannot be checked without a query per message; the snapshot a client asks for is the truth."""
    henry, _, tabs = two_users
    tab = tabs[henry.id][0]
    assert publisher.publish(CHANNEL, made_up_change(henry.id, 1)) == WORKERS
    tab.wait_for_seq(1)
    assert tab.call("get_current_balance") == {"balance": 0, "seq": 0}
    real = cluster.api.top_up(henry, cluster.admin, 4)
    tab.wait_until(lambda t: real["id"] in [e["transactionId"] for e in t.of("balance_updated")],
                   "the real change with seq 1")
    assert tab.of("balance_updated")[-1]["seq"] == 1 and tab.of("balance_initial")[-1] == {"balance": 0, "seq": 0}
