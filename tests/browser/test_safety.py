"""What people type is shown as text, never run; forms without this site's CSRF token change nothing."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.expectations import live

pytestmark = pytest.mark.browser

EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b>'


def shown_as_text(page, where: str) -> None:
    """The markup is visible as characters, and none of it became an element or ran."""
    expect(page.locator(where).filter(has_text=EVIL).first).to_be_visible()
    assert page.locator(f"{where} script, {where} img, {where} b").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_html_in_descriptions_notes_and_names_is_shown_as_text_everywhere(site):
    admin = site.admin()
    alice_email = "alice-html@example.com"
    reply = site.api("POST", "/auth/register", json={"email": alice_email, "password": "password123", "name": EVIL})
    assert reply.status_code == 201
    alice = site._login_api(alice_email, "password123")
    site.fund(alice, admin, 10)

    queue = live(site.page_for(admin, "/admin/topups"))
    wallet = live(site.page_for(alice))
    wallet.get_by_label("Amount (USD)").fill("5")
    wallet.get_by_label("Note for the admin").fill(EVIL)
    wallet.get_by_role("button", name="Request top-up").click()
    shown_as_text(wallet, "#transactions")                                  # rendered by the server

    row = queue.locator("tr.pending-row", has_text=alice_email)
    shown_as_text(queue, "#pending-rows")                                   # added live by the admin script
    live(wallet)
    row.get_by_label("Note (optional)").fill(EVIL)
    row.get_by_role("button", name="Reject").click()
    expect(row.locator("[data-confirm-text]")).to_have_text(f"Reject $5.00 for {alice_email}?")
    row.get_by_role("button", name="Yes, reject").click()

    expect(wallet.locator(".toast-text", has_text="rejected")).to_have_text(f"Top-up of $5.00 rejected: {EVIL}")
    shown_as_text(wallet, "#toasts")                                        # the reason, in a toast
    expect(wallet.locator("#transactions tr.tx").first.locator(".badge")).to_have_text("Rejected")
    shown_as_text(wallet, "#transactions")                                  # the row, re-rendered live
    expect(wallet.locator("#transactions tr.tx").first).to_contain_text("Note: " + EVIL)

    queue.goto("/admin/topups/processed")
    shown_as_text(queue, ".processed-table")
    queue.goto("/admin/users")
    shown_as_text(queue, ".users-table")
    queue.goto(f"/admin/users/{alice.id}")
    shown_as_text(queue, "#user-transactions")
    wallet.reload()
    shown_as_text(wallet, "#transactions")


def test_forms_without_a_valid_csrf_token_are_refused_and_change_nothing(site):
    admin, alice = site.admin(), site.user("alice")
    site.fund(alice, admin, 100)
    wallet = live(site.page_for(alice))

    wallet.locator("#topup-form input[name=csrf_token]").evaluate("input => input.remove()")
    wallet.get_by_label("Amount (USD)").fill("5")
    wallet.get_by_role("button", name="Request top-up").click()
    expect(wallet.locator(".error-message")).to_have_text(
        "This form has expired or did not come from this site. Go back, reload the page and try again.")

    wallet.goto("/")
    garden = wallet.locator(".room", has_text="Garden Single")
    garden.locator("input[name=csrf_token]").evaluate("input => input.value = 'forged'")
    garden.locator(".book-button").click()
    expect(wallet.get_by_role("heading", level=1)).to_have_text("That request could not be used")

    # What a forged form elsewhere would send, as near as a test gets: the login cookie, but no token.
    for path, form in [("/topup", {"amount": "5"}), ("/book", {"room": "garden-single", "idempotency_key": "k1"}),
                       ("/logout", {})]:
        reply = wallet.request.post(path, form=form, headers={"Accept": "text/html"}, max_redirects=0)
        assert reply.status == 400, path

    queue = live(site.page_for(admin, "/admin/topups"))
    pending = site.request_topup(alice, 7, "Token test")
    row = queue.locator("tr.pending-row", has_text="Token test")
    expect(row).to_be_visible()
    row.locator("input[name=csrf_token]").evaluate("input => input.remove()")
    row.get_by_role("button", name="Approve").click()
    row.get_by_role("button", name="Yes, approve").click()
    expect(queue.locator(".error-message")).to_contain_text("This form has expired")

    assert site.balance(alice) == 100
    items = site.api("GET", "/transactions", alice).json()["items"]
    assert [(t["type"], t["status"]) for t in items] == [("topup", "pending"), ("topup", "success")]
    assert items[0]["id"] == pending
    wallet.goto("/")
    expect(wallet.locator("#live-status")).to_have_attribute("data-state", "live")      # still logged in

    visitor = site.context().new_page()
    visitor.goto("/login")
    visitor.locator("input[name=csrf_token]").evaluate("input => input.remove()")
    visitor.get_by_label("Email").fill(alice.email)
    visitor.get_by_label("Password").fill(alice.password)
    visitor.get_by_role("button", name="Log in").click()
    expect(visitor.locator(".error-message")).to_contain_text("This form has expired")
    assert not [c for c in visitor.context.cookies() if c["name"] == "balance_access"]


def test_a_tab_whose_browser_has_since_logged_in_as_someone_else_shows_nothing_of_theirs(site):
    """Alice's second tab stays Alice's page: after Bob logs in in her first tab, its reconnect is refused."""
    admin = site.admin()
    alice, bob = site.user("alice"), site.user("bob")
    site.fund(alice, admin, 11)
    site.fund(bob, admin, 77.77)
    context = site.context()
    first = live(site.log_in(context, alice))
    second = live(site.open(context, "/"))
    expect(second.locator("#balance")).to_have_text("$11.00")

    first.get_by_role("button", name="Log out").click()
    first.get_by_label("Email").fill(bob.email)
    first.get_by_label("Password").fill(bob.password)
    first.get_by_role("button", name="Log in").click()
    live(first)
    expect(first.locator("#balance")).to_have_text("$77.77")
    site.api("POST", "/transactions/payment", alice, json={"amount": 1, "description": "alice-coffee"})
    expect(second.locator("#balance")).to_have_text("$10.00")  # her socket, still hers, brings her change
    second.wait_for_timeout(1000)  # and the page reloads its list, with the cookie: Bob's now
    assert "77.77" not in second.locator("main").inner_text()

    context.set_offline(True)  # a network blip: the second tab's socket reconnects, with Bob's cookie now
    second.wait_for_timeout(1500)
    context.set_offline(False)
    expect(second.locator("#live-status")).to_have_attribute("data-state", "offline", timeout=15_000)
    expect(second.locator(".toast-text", has_text="logged in as someone else")).to_be_visible()
    second.wait_for_timeout(1000)
    expect(second.locator("#balance")).to_have_text("$10.00")
    assert "77.77" not in second.locator("main").inner_text()


def test_a_tab_left_open_after_logging_out_in_another_goes_offline_as_a_whole_and_says_why(site):
    """The socket would outlive the logout (its token is still valid) while the page's reads fail: the page must not
    go on showing changes beside a list that no longer updates."""
    admin = site.admin()
    alice = site.user("alice-out")
    site.fund(alice, admin, 20)
    context = site.context()
    first = live(site.log_in(context, alice))
    second = live(site.open(context, "/"))

    first.get_by_role("button", name="Log out").click()
    site.api("POST", "/transactions/payment", alice, json={"amount": 1, "description": "after-logout"})

    expect(second.locator(".toast-text", has_text="no longer logged in")).to_be_visible(timeout=15_000)
    expect(second.locator("#live-status")).to_have_attribute("data-state", "offline")
    expect(second.locator("#balance-note")).to_have_text("Not live: reload or log in again.")
    site.api("POST", "/transactions/payment", alice, json={"amount": 2, "description": "later"})
    second.wait_for_timeout(1500)
    assert second.locator(".toast-text", has_text="$17.00").count() == 0, "its socket was closed with the page"
