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
