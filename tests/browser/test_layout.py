"""Phones, keyboards and screen readers: every page fits a small screen, every action works from the keyboard,
and the balance changes in place (an aria-live region, tabular figures) without moving anything else."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.expectations import live

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}


def fits(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


def tab_to(page, locator, presses: int = 40) -> None:
    """Press Tab until ``locator`` has the focus, as a keyboard user would."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if locator.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{locator} cannot be reached with the Tab key")


def test_every_page_fits_a_phone_screen(site):
    admin, alice = site.admin(), site.user("alice", full_name="Alice Example-With-A-Long-Name")
    site.fund(alice, admin, 1234.56)
    site.request_topup(alice, 20, "A description long enough to need wrapping on a narrow screen, " * 3)
    visitor = site.context(viewport=PHONE).new_page()
    for path in ("/login", "/signup", "/no-such-page"):
        visitor.goto(path)
        fits(visitor)
    wallet = live(site.page_for(alice, viewport=PHONE))
    fits(wallet)
    queue = site.page_for(admin, "/admin/topups", viewport=PHONE)
    for path in ("/admin/topups", "/admin/topups/processed", "/admin/users", f"/admin/users/{alice.id}"):
        queue.goto(path)
        fits(queue)


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_the_balance_changes_in_place_without_moving_anything_else(site, viewport):
    admin, alice = site.admin(), site.user("alice")
    page = live(site.page_for(alice, viewport=viewport))
    balance = page.locator("#balance")
    assert balance.get_attribute("aria-live") == "polite"
    assert balance.evaluate("el => getComputedStyle(el).fontVariantNumeric") == "tabular-nums"
    sections = ["#balance-heading", "#refresh-balance", "#rooms", "#topup-form", "#history-heading"]

    def boxes():
        return {s: page.locator(s).bounding_box() for s in sections}

    before = boxes()
    site.fund(alice, admin, 1250)
    expect(balance).to_have_text("$1,250.00")
    expect(page.locator(".room", has_text="Loft Suite").locator(".book-button")).to_be_enabled()
    assert boxes() == before


def test_sign_up_ask_for_money_approve_it_and_book_with_the_keyboard_alone(site):
    admin = site.admin()
    page = site.context().new_page()
    page.goto("/signup")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_label("Email"))
    page.keyboard.type("keys@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type("Kay Board")
    page.keyboard.press("Tab")
    page.keyboard.type("password123")
    page.keyboard.press("Enter")
    expect(page.locator(".flash-success")).to_contain_text("Welcome!")
    live(page)

    tab_to(page, page.get_by_label("Amount (USD)"))
    page.keyboard.type("100")
    page.keyboard.press("Tab")
    page.keyboard.type("Typed, not clicked")
    page.keyboard.press("Enter")
    expect(page.locator(".flash-success")).to_have_text("Top-up of $100.00 requested. An admin will review it.")
    live(page)

    queue = live(site.page_for(admin, "/admin/topups"))
    row = queue.locator("tr.pending-row", has_text="Typed, not clicked")
    tab_to(queue, row.get_by_role("button", name="Approve"))
    queue.keyboard.press("Enter")
    expect(row.get_by_role("button", name="Yes, approve")).to_be_focused()
    queue.keyboard.press("Escape")
    expect(row.get_by_role("button", name="Approve")).to_be_focused()
    queue.keyboard.press("Enter")
    queue.keyboard.press("Enter")
    expect(queue.locator(".flash-success")).to_have_text("Approved $100.00 for keys@example.com.")

    expect(page.locator("#balance")).to_have_text("$100.00")
    book = page.locator(".room", has_text="Garden Single").locator(".book-button")
    expect(book).to_be_enabled()
    tab_to(page, book)
    page.keyboard.press("Enter")
    expect(page.locator(".flash-success")).to_have_text(
        "Booked Garden Single · 2 nights: paid $90.00. Balance: $10.00.")


def test_moving_between_the_pages_logs_nothing_in_the_console(site):
    """No failed request (a missing favicon was a 404 on every page) and no broken socket (after a websocket,
    the server wrote an HTTP answer: 'Invalid frame header' on every page change)."""
    admin, alice = site.admin(), site.user("alice")
    site.fund(alice, admin, 10)
    page = site.context().new_page()
    logged = []
    page.on("console", lambda message: logged.append(message.text) if message.type in ("error", "warning") else None)
    page.on("requestfailed", lambda request: None if request.failure == "net::ERR_ABORTED"  # cut by leaving
            else logged.append(f"failed: {request.url} {request.failure}"))
    page.on("response", lambda response: logged.append(f"{response.status}: {response.url}")
            if response.status >= 400 else None)
    page.goto("/login")
    page.get_by_label("Email").fill(alice.email)
    page.get_by_label("Password").fill(alice.password)
    page.get_by_role("button", name="Log in").click()
    for _ in range(3):
        live(page)
        expect(page.locator("#live-status")).to_have_attribute("data-transport", "websocket")
        page.reload()
    live(page)
    page.goto("/login")  # leave the live page last: its socket closes
    page.wait_for_timeout(500)
    assert logged == []
