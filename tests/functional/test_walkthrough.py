"""The seed's curl walk-through, as a worked scenario."""


def test_seed_walkthrough_register_request_approve_then_pay_and_run_short(client, auth):
    user_id, user = auth.new_user("user@example.com")
    _, admin = auth.new_admin()

    pending = client.post("/transactions/topup", json={"amount": 50, "description": "Test topup"}, headers=user)
    assert pending.status_code == 201
    assert pending.get_json()["status"] == "pending"

    approved = client.patch(f"/transactions/topup/{pending.get_json()['id']}/process",
                            json={"status": "success", "admin_notes": "Approved for testing"}, headers=admin)
    assert approved.status_code == 200
    assert approved.get_json()["status"] == "success"
    assert approved.get_json()["balance_snapshot"] == 50

    assert client.get("/balance", headers=user).get_json()["balance"] == 50

    paid = client.post("/transactions/payment", json={"amount": 12.5, "description": "Room 101"}, headers=user)
    assert paid.status_code == 201
    assert paid.get_json()["balance_snapshot"] == 37.5

    short = client.post("/transactions/payment", json={"amount": 40}, headers=user)
    assert short.status_code == 402
    error = short.get_json()["error"]
    assert (error["code"], error["required_amount"], error["current_balance"], error["shortfall"]) == (
        "insufficient_balance", 40, 37.5, 2.5)
    assert client.get("/balance", headers=user).get_json() | {"updated_at": None} == {
        "balance": 37.5, "currency": "USD", "seq": 2, "updated_at": None}


def test_worked_scenario_two_users_a_decided_queue_and_books_that_verify(client, auth, runner):
    """Alice and Bob ask for top-ups; the admin approves Alice's, rejects Bob's; both try to pay."""
    _, alice = auth.new_user("alice@example.com")
    _, bob = auth.new_user("bob@example.com")
    _, admin = auth.new_admin()
    a = client.post("/transactions/topup", json={"amount": 100, "description": "salary"}, headers=alice).get_json()
    b = client.post("/transactions/topup", json={"amount": 30}, headers=bob).get_json()
    queue = client.get("/transactions/topup/pending", headers=admin).get_json()["items"]
    assert [(t["id"], t["user"]["email"]) for t in queue] == [(a["id"], "alice@example.com"),
                                                              (b["id"], "bob@example.com")]

    client.patch(f"/transactions/topup/{a['id']}/process", json={"status": "success"}, headers=admin)
    client.patch(f"/transactions/topup/{b['id']}/process", json={"status": "failed", "admin_notes": "no receipt"},
                 headers=admin)
    room = client.post("/transactions/payment", json={"amount": 89.99, "reference": "room-7"}, headers=alice)
    short = client.post("/transactions/payment", json={"amount": 10.02}, headers=alice)
    bob_short = client.post("/transactions/payment", json={"amount": 1}, headers=bob)

    assert (room.status_code, short.status_code, bob_short.status_code) == (201, 402, 402)
    assert short.get_json()["error"]["shortfall"] == 0.01
    assert client.get("/balance", headers=alice).get_json()["balance"] == 10.01
    assert client.get("/balance", headers=bob).get_json()["balance"] == 0
    assert [(t["type"], t["status"]) for t in client.get("/transactions", headers=alice).get_json()["items"]] == [
        ("payment", "failed"), ("payment", "success"), ("topup", "success")]
    assert [(t["status"], t["failure_reason"]) for t in client.get("/transactions", headers=bob).get_json()["items"]] \
        == [("failed", "insufficient_balance"), ("failed", "rejected")]
    assert client.get("/transactions/topup/pending", headers=admin).get_json()["items"] == []
    verified = runner.invoke(args=["ledger", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "accounts: 5  entries: 2  postings: 4  sum of all postings: 0.00" in verified.output
