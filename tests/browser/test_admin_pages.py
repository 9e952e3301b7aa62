"""Admins work the queue live: new requests appear without a reload, and a top-up is credited once."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.expectations import live

pytestmark = pytest.mark.browser


def pending_count(page) -> int:
    return int(page.locator("#pending-count").inner_text())


def test_the_pending_list_shows_a_new_request_without_a_reload(site):
    admin, alice = site.admin(), site.user("alice")
    queue = live(site.page_for(admin, "/admin/topups"))
    queue.evaluate("window.__sameDocument = true")
    before = pending_count(queue)

    wallet = live(site.page_for(alice))
    wallet.get_by_label("Amount (USD)").fill("75.25")
    wallet.get_by_label("Note for the admin").fill("Flight to Lisbon")
    wallet.get_by_role("button", name="Request top-up").click()

    row = queue.locator("tr.pending-row", has_text="Flight to Lisbon")
    expect(row).to_be_visible()
    expect(row.locator('[data-cell="user"]')).to_have_text(alice.email)
    expect(row.locator('[data-cell="amount"]')).to_have_text("$75.25")
    expect(queue.locator("#pending-count")).to_have_text(str(before + 1))
    expect(queue.locator(".toast-text").last).to_have_text(f"New top-up request: $75.25 from {alice.email}")
    assert queue.evaluate("window.__sameDocument") is True

    row.get_by_label("Note (optional)").fill("Have a good trip")
    row.get_by_role("button", name="Approve").click()
    expect(row.locator("[data-confirm-text]")).to_have_text(f"Approve $75.25 for {alice.email}?")
    row.get_by_role("button", name="Cancel").click()
    expect(row.get_by_role("button", name="Approve")).to_be_focused()
    row.get_by_role("button", name="Approve").click()
    row.get_by_role("button", name="Yes, approve").click()
    expect(queue.locator(".flash-success")).to_have_text(f"Approved $75.25 for {alice.email}.")
    expect(queue.locator("tr.pending-row", has_text="Flight to Lisbon")).to_have_count(0)
    assert site.balance(alice) == 75.25

    processed = queue
    processed.goto("/admin/topups/processed")
    decided = processed.locator("tbody tr", has_text="Flight to Lisbon")
    expect(decided).to_contain_text("Approved")
    expect(decided).to_contain_text(admin.email)
    expect(decided).to_contain_text("Note: Have a good trip")


def test_two_admins_deciding_one_top_up_credit_it_once_and_the_second_is_told_who_was_first(site):
    first, second, alice = site.admin("first"), site.admin("second"), site.user("alice")
    site.request_topup(alice, 40, "Race me")
    a = live(site.page_for(first, "/admin/topups"))
    b = live(site.page_for(second, "/admin/topups"))
    row_a = a.locator("tr.pending-row", has_text="Race me")
    row_b = b.locator("tr.pending-row", has_text="Race me")

    row_b.get_by_role("button", name="Approve").click()            # b is still confirming ...
    expect(row_b.get_by_role("button", name="Yes, approve")).to_be_visible()
    row_a.get_by_role("button", name="Approve").click()
    row_a.get_by_role("button", name="Yes, approve").dblclick()      # ... when a double-clicks yes
    expect(a.locator(".flash-success")).to_have_text(f"Approved $40.00 for {alice.email}.")

    expect(row_b.locator("[data-row-status]")).to_have_text("Approved just now by an admin")   # b sees it live
    expect(row_b.get_by_role("button", name="Yes, approve")).to_be_hidden()

    # Had b's click left before that news arrived, the server answers it: b's form, sent as it stood.
    form = row_b.locator("form")
    form.evaluate("""form => {
        for (const [name, value] of [["decision", "approve"], ["confirmed", "yes"]]) {
            const input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = value; form.append(input);
        }
        HTMLFormElement.prototype.submit.call(form);
    }""")
    expect(b.locator(".flash-error")).to_have_text(re.compile(
        rf"^Not approved again: {re.escape(first.email)} already approved this top-up at .+ UTC\. "
        r"Nothing more was credited\.$"))
    assert site.balance(alice) == 40
    history = site.api("GET", "/transactions", alice).json()["items"]
    assert [(t["type"], t["status"], t["amount"]) for t in history] == [("topup", "success", 40)]


def test_the_users_page_shows_balances_that_follow_changes_and_links_to_each_history(site):
    admin, alice = site.admin(), site.user("alice")
    site.fund(alice, admin, 10)
    page = live(site.page_for(admin, "/admin/users"))
    row = page.locator("tr", has_text=alice.email)
    expect(row.locator(".user-balance")).to_have_text("$10.00")

    site.fund(alice, admin, 5.5)                                     # a decision: refreshed at once
    expect(row.locator(".user-balance")).to_have_text("$15.50")
    site.api("POST", "/transactions/payment", alice, json={"amount": 3})   # a payment: on the next refresh
    expect(row.locator(".user-balance")).to_have_text("$12.50", timeout=8000)

    row.get_by_role("link", name=re.compile("History")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(alice.email)
    expect(page.locator("#user-transactions tr.tx")).to_have_count(3)
    expect(page.locator("#user-transactions tr.tx").first).to_contain_text("-$3.00")


def test_a_user_on_an_admin_page_gets_the_403_page_and_a_visitor_is_sent_to_log_in(site):
    alice = site.user("alice")
    page = site.page_for(alice)
    reply = page.goto("/admin/topups")
    assert reply.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.locator(".error-message")).to_have_text("This page is for admins only.")
    expect(page.locator(".site-header")).to_contain_text(alice.email)          # the same look, still logged in

    visitor = site.context().new_page()
    visitor.goto("/admin/users")
    expect(visitor).to_have_url(re.compile(r"/login\?next=%2Fadmin%2Fusers$"))
    visitor.get_by_label("Email").fill(alice.email)
    visitor.get_by_label("Password").fill("wrong password")
    visitor.get_by_role("button", name="Log in").click()
    expect(visitor.get_by_role("alert")).to_have_text("Invalid email or password.")
    expect(visitor.get_by_label("Email")).to_have_value(alice.email)
    expect(visitor.get_by_label("Password")).to_have_value("")


def test_a_request_that_arrives_while_the_page_checks_the_list_stays_pending(site):
    """On connect the page asks the server for the pending list; a request arriving live while that answer is
    on its way is newer than the answer, not decided. (Held here; under load it happens by itself.)"""
    admin, alice = site.admin(), site.user("alice")
    decided_before = site.request_topup(alice, 3, "Decided before the check")
    context = site.context()
    held = []

    def answer_later(route):
        site.decide(admin, decided_before)          # decided after the page was rendered ...
        held.append((route, route.fetch()))         # ... and the server answers the check now, then it waits

    context.route("**/transactions/topup/pending", answer_later)
    queue = live(site.log_in(context, admin, "/admin/topups"))
    site.wait_until(queue, lambda: held, "the server has answered the check")
    expect(queue.locator("#pending")).to_have_attribute("aria-busy", "true")
    site.request_topup(alice, 9, "Arrived during the check")
    row = queue.locator("tr.pending-row", has_text="Arrived during the check")
    expect(row).to_be_visible()                                          # from the live event
    expect(queue.locator(".toast-text").last).to_have_text(f"New top-up request: $9.00 from {alice.email}")

    route, response = held[0]
    route.fulfill(response=response)
    expect(queue.locator("#pending")).not_to_have_attribute("aria-busy", "true")
    expect(row.get_by_role("button", name="Approve")).to_be_visible()     # not "already decided"
    expect(row.locator("[data-row-status]")).to_be_hidden()
    expect(queue.locator("tr.pending-row", has_text="Decided before the check").locator("[data-row-status]")) \
        .to_have_text("Approved just now by an admin")
    expect(queue.locator("#pending-count")).to_have_text("1")


def test_an_approval_clicked_after_the_login_ended_does_nothing_and_the_admin_is_brought_back_to_the_queue(site):
    """The queue was left open past the hour a login lasts: the click is not carried out, and the admin is told."""
    admin, alice = site.admin(), site.user("alice")
    site.request_topup(alice, 20, "Left open over lunch")
    queue = live(site.page_for(admin, "/admin/topups"))
    row = queue.locator("tr.pending-row", has_text="Left open over lunch")
    form_csrf = row.locator('input[name="csrf_token"]').get_attribute("value")
    queue.context.add_cookies([{"name": "balance_access", "value": site.ended_login(admin, form_csrf),
                                "url": site.server.url, "httpOnly": True, "sameSite": "Lax"}])

    row.get_by_role("button", name="Approve").click()
    row.get_by_role("button", name="Yes, approve").click()
    queue.wait_for_url("**/login?next=%2Fadmin%2Ftopups")
    expect(queue.locator(".flash")).to_have_text(
        "Your login had ended before that form was sent, so nothing was done. Log in and send it again.")
    assert site.balance(alice) == 0

    queue.get_by_label("Email").fill(admin.email)
    queue.get_by_label("Password").fill(admin.password)
    queue.get_by_role("button", name="Log in").click()
    queue.wait_for_url("**/admin/topups")
    again = queue.locator("tr.pending-row", has_text="Left open over lunch")
    again.get_by_role("button", name="Approve").click()
    again.get_by_role("button", name="Yes, approve").click()
    expect(queue.locator(".flash-success")).to_have_text(f"Approved $20.00 for {alice.email}.")
    assert site.balance(alice) == 20


def test_an_admins_own_request_appears_live_without_buttons_for_them_and_with_them_for_another_admin(site):
    """Four eyes on the live queue: the request arrives in both admins' queues, only the other may decide it."""
    asker, checker = site.admin("asker"), site.admin("checker")
    mine = live(site.page_for(asker, "/admin/topups"))
    theirs = live(site.page_for(checker, "/admin/topups"))

    site.request_topup(asker, 30, "Conference travel")

    own_row = mine.locator("tr.pending-row", has_text="Conference travel")
    expect(own_row.locator("[data-row-status]")).to_have_text("Your own request: another admin must decide it.")
    expect(own_row.get_by_role("button", name="Approve")).to_be_hidden()
    row = theirs.locator("tr.pending-row", has_text="Conference travel")
    row.get_by_role("button", name="Approve").click()
    row.get_by_role("button", name="Yes, approve").click()
    expect(theirs.locator(".flash-success")).to_have_text(f"Approved $30.00 for {asker.email}.")
    expect(own_row.locator("[data-row-status]")).to_have_text("Approved just now by an admin")
    assert site.balance(asker) == 30
