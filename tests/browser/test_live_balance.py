"""The balance on screen is live: an admin's decision reaches every tab of its user at once, and only theirs."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.expectations import expect_each_within, live

pytestmark = pytest.mark.browser


def test_an_approval_reaches_both_tabs_of_the_user_within_a_second_and_not_another_users_tab(site):
    admin, alice, bob = site.admin(), site.user("alice"), site.user("bob")
    alice_context = site.context()
    first_tab = live(site.log_in(alice_context, alice))
    second_tab = live(site.open(alice_context, "/"))
    bob_tab = live(site.page_for(bob))
    second_tab.evaluate("window.__sameDocument = true")

    first_tab.get_by_label("Amount (USD)").fill("50")
    first_tab.get_by_label("Note for the admin").fill("Trip fund")
    first_tab.get_by_role("button", name="Request top-up").click()
    expect(first_tab.locator(".flash-success")).to_have_text("Top-up of $50.00 requested. An admin will review it.")
    row = first_tab.locator("#transactions tr.tx").first
    expect(row).to_contain_text("Trip fund")
    expect(row.locator(".badge")).to_have_text("Pending")
    asked_elsewhere = second_tab.locator("#transactions tr.tx", has_text="Trip fund")  # no money moved, still listed
    expect(asked_elsewhere.locator(".badge")).to_have_text("Pending")
    assert second_tab.evaluate("window.__sameDocument") is True, "the other tab was reloaded"
    live(first_tab)
    for tab in (first_tab, second_tab):
        tab.evaluate("window.__sameDocument = true")

    admin_page = live(site.page_for(admin, "/admin/topups"))
    request = admin_page.locator("tr.pending-row", has_text="Trip fund")
    request.get_by_role("button", name="Approve").click()
    started = time.monotonic()
    request.get_by_role("button", name="Yes, approve").click()
    expect_each_within((first_tab, second_tab), "#balance", "$50.00", started, 1.0)

    for tab in (first_tab, second_tab):
        expect(tab.locator(".toast").first).to_contain_text("+$50.00 · Balance: $50.00")
        expect(tab.locator("#transactions tr.tx", has_text="Trip fund").locator(".badge")).to_have_text("Approved")
        assert tab.evaluate("window.__sameDocument") is True, "the tab was reloaded"
    expect(admin_page.locator(".flash-success")).to_have_text(f"Approved $50.00 for {alice.email}.")

    # Bob's tab heard nothing of it. A socket gets its events in order, so once a later change of bob's own
    # has arrived, anything of alice's sent to him would have arrived before it.
    site.fund(bob, admin, 1)
    expect(bob_tab.locator("#balance")).to_have_text("$1.00")
    expect(bob_tab.locator(".toast-text")).to_have_text(["+$1.00 · Balance: $1.00"])
    expect(bob_tab.locator("#transactions tr.tx")).to_have_count(1)
    expect(bob_tab.locator("#transactions")).not_to_contain_text("Trip fund")


def test_a_rejected_top_up_and_a_payment_each_toast_and_turn_their_rows_without_a_reload(site):
    admin, alice = site.admin(), site.user("alice")
    site.fund(alice, admin, 150.5)
    page = live(site.page_for(alice))
    expect(page.locator("#balance")).to_have_text("$150.50")

    page.wait_for_load_state("networkidle")  # the rows' read on connect is over: a row appearing now is the event's
    pending = site.request_topup(alice, 75, "Spare cash")  # through the API, as another tab or device would
    expect(page.locator("#transactions tr.tx", has_text="Spare cash").locator(".badge")).to_have_text("Pending")
    site.api("PATCH", f"/transactions/topup/{pending}/process", admin,
             json={"status": "failed", "admin_notes": "Send a receipt first"})
    expect(page.locator(".toast-text", has_text="rejected")).to_have_text(
        "Top-up of $75.00 rejected: Send a receipt first")
    rejected = page.locator("#transactions tr.tx", has_text="Spare cash")
    expect(rejected.locator(".badge")).to_have_text("Rejected")
    expect(rejected).to_contain_text("Note: Send a receipt first")

    paid = site.api("POST", "/transactions/payment", alice, json={"amount": 12, "description": "Breakfast"})
    assert paid.status_code == 201
    expect(page.locator("#balance")).to_have_text("$138.50")
    expect(page.locator(".toast", has_text="-$12.00")).to_contain_text("-$12.00 · Balance: $138.50")
    expect(page.locator("#transactions tr.tx").first).to_contain_text("Breakfast")
    expect(page.locator("#transactions tr.tx").first.locator(".badge")).to_have_text("Paid")


def test_the_refresh_button_asks_the_server_and_shows_the_current_balance(site):
    admin, alice = site.admin(), site.user("alice")
    page = live(site.page_for(alice))
    site.fund(alice, admin, 20)
    expect(page.locator("#balance")).to_have_text("$20.00")
    page.evaluate("document.getElementById('balance').textContent = '?'")
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#balance")).to_have_text("$20.00")
    expect(page.get_by_role("button", name="Refresh")).to_be_enabled()


def test_a_rejection_between_the_page_and_its_socket_shows_once_the_socket_connects(site):
    """A rejected top-up moves no balance, so it has no seq to replay: the page reads its rows on connect."""
    admin, alice = site.admin(), site.user("alice")
    pending = site.request_topup(alice, 15, "Between render and connect")
    context = site.context()
    site.log_in(context, alice)
    page = context.new_page()
    held, released = [], []

    def hold(route):                                                   # this tab's socket waits ...
        if released:
            route.continue_()
        else:
            held.append(route)

    page.route("**/socket.io/**", hold)
    page.goto("/")
    row = page.locator("#transactions tr.tx", has_text="Between render and connect")
    expect(row.locator(".badge")).to_have_text("Pending")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connecting")
    site.wait_until(page, lambda: held, "the socket's first request is held")
    assert site.decide(admin, pending, approve=False).status_code == 200    # ... while the top-up is rejected
    released.append(True)
    for route in held:
        route.continue_()

    live(page)
    expect(row.locator(".badge")).to_have_text("Rejected")
