"""Booking a room: the Book button follows the live balance (the seed's BookingPage), and a booking pays once."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.expectations import live

pytestmark = pytest.mark.browser


def payments(site, person) -> list[dict]:
    return [t for t in site.api("GET", "/transactions", person).json()["items"] if t["type"] == "payment"]


def test_the_book_button_follows_the_live_balance_and_a_double_click_books_once(site):
    admin, alice = site.admin(), site.user("alice")
    site.fund(alice, admin, 50)
    page = live(site.page_for(alice))
    garden = page.locator(".room", has_text="Garden Single")          # $45.00 x 2 nights = $90.00
    book = garden.locator(".book-button")

    expect(book).to_be_disabled()
    expect(book).to_have_text("Insufficient balance")
    expect(garden.locator("[data-room-status]")).to_have_text("You need $40.00 more.")

    site.fund(alice, admin, 30)                                        # $80.00: still short, by less
    expect(garden.locator("[data-room-status]")).to_have_text("You need $10.00 more.")
    expect(book).to_be_disabled()

    site.fund(alice, admin, 15)                                        # $95.00: enough
    expect(book).to_be_enabled()
    expect(book).to_have_text("Book now")
    expect(garden.locator("[data-room-status]")).to_have_text("Within your balance.")

    book.dblclick()
    expect(page.locator(".flash-success")).to_have_text(
        "Booked Garden Single · 2 nights: paid $90.00. Balance: $5.00.")
    expect(page.locator("#balance")).to_have_text("$5.00")
    assert site.balance(alice) == 5
    assert [(p["amount"], p["status"], p["reference"]) for p in payments(site, alice)] == [
        (90, "success", "room:garden-single")]
    live(page)
    expect(page.locator(".room", has_text="Garden Single").locator(".book-button")).to_be_disabled()


def test_a_booking_form_sent_again_by_a_retry_pays_once(site):
    admin, alice = site.admin(), site.user("alice")
    site.fund(alice, admin, 500)
    page = live(site.page_for(alice))
    form = page.locator(".room", has_text="Harbour Double").locator("form")
    fields = {name: form.locator(f'input[name="{name}"]').input_value()
              for name in ("csrf_token", "room", "idempotency_key")}

    for _ in range(3):                        # what a browser or proxy retrying the same POST would send
        reply = page.request.post("/book", form=fields, max_redirects=0)
        assert reply.status == 303
    page.reload()
    expect(page.locator(".flash-success").first).to_contain_text("Booked Harbour Double · 3 nights: paid $240.00.")
    expect(page.locator(".flash-success").last).to_contain_text("you were charged once")
    assert site.balance(alice) == 260
    assert len(payments(site, alice)) == 1


def test_a_payment_that_falls_short_is_refused_and_says_how_much_more_is_needed(site):
    admin, alice = site.admin(), site.user("alice")
    site.fund(alice, admin, 100)
    page = live(site.page_for(alice))
    loft = page.locator(".room", has_text="Loft Suite").locator("form")   # $300.00, the button is disabled
    fields = {name: loft.locator(f'input[name="{name}"]').input_value()
              for name in ("csrf_token", "room", "idempotency_key")}
    assert page.request.post("/book", form=fields, max_redirects=0).status == 303    # sent anyway, say from a stale tab

    expect(page.locator(".toast-text", has_text="failed")).to_have_text(
        "Payment of $300.00 failed: you need $200.00 more")
    failed = page.locator("#transactions tr.tx").first
    expect(failed.locator(".badge")).to_have_text("Failed")
    expect(failed).to_contain_text("Reason: insufficient balance")
    expect(page.locator("#balance")).to_have_text("$100.00")
    page.reload()
    expect(page.locator(".flash-error")).to_have_text(
        "Not booked: Loft Suite costs $300.00 and your balance is $100.00. You need $200.00 more.")
