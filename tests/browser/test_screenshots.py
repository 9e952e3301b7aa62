"""The pictures in the README: a user's dashboard as a live change lands, and the admins' queue as a request
arrives, on a fresh server so only this scenario is on screen. Saved to test-artifacts/, or to docs/screenshots/ with UPDATE_SCREENSHOTS=1."""
from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from tests.browser.expectations import live

pytestmark = pytest.mark.browser


def shoot(page, path: str) -> None:
    """The whole page in one viewport (with room below for a toast), so toasts sit where a person sees them."""
    page.wait_for_function("""() => !document.getAnimations().some(
        a => a.animationName === "toast-in" && a.playState !== "finished")""")   # toasts have slid in
    size = page.viewport_size
    height = page.evaluate("document.documentElement.scrollHeight") + 72
    page.set_viewport_size({"width": size["width"], "height": max(height, size["height"])})
    page.screenshot(path=path)
    page.set_viewport_size(size)


def test_screenshots_of_the_dashboard_and_the_admin_queue(own_site, screenshots):
    site = own_site
    admin = site.admin(email="ops@example.com")
    maya = site.user(email="maya.lopez@example.com", full_name="Maya Lopez")
    li = site.user(email="li.wei@example.com", full_name="Li Wei")
    sam = site.user(email="sam.okafor@example.com", full_name="Sam Okafor")

    site.fund(maya, admin, 200)
    site.api("POST", "/transactions/payment", maya, json={"amount": 90, "description": "Garden Single · 2 nights",
                                                         "reference": "room:garden-single"})
    rejected = site.request_topup(maya, 500, "Conference travel")
    site.api("PATCH", f"/transactions/topup/{rejected}/process", admin,
             json={"status": "failed", "admin_notes": "Please attach the invoice"})
    site.request_topup(maya, 25, "Weekend away")
    site.request_topup(li, 120, "Team dinner")

    dashboard = live(site.page_for(maya))
    queue = live(site.page_for(admin, "/admin/topups"))
    approve = site.request_topup(maya, 40.5, "Refund from Sam")
    site.decide(admin, approve)
    expect(dashboard.locator("#balance")).to_have_text("$150.50")
    expect(dashboard.locator(".toast-text")).to_have_text("+$40.50 · Balance: $150.50")
    expect(dashboard.locator("#transactions tr.tx").first).to_contain_text("Refund from Sam")
    dashboard.mouse.move(0, 0)
    shoot(dashboard, os.path.join(screenshots, "dashboard.png"))

    queue.reload()
    live(queue)
    site.request_topup(sam, 60, "Airport taxi <receipt attached>")
    row = queue.locator("tr.pending-row", has_text="Team dinner")
    expect(queue.locator("tr.pending-row", has_text="Airport taxi")).to_be_visible()
    row.get_by_label("Note (optional)").fill("Enjoy!")
    row.get_by_role("button", name="Approve").click()
    expect(row.locator("[data-confirm-text]")).to_have_text("Approve $120.00 for li.wei@example.com?")
    shoot(queue, os.path.join(screenshots, "admin.png"))

    phone = live(site.page_for(maya, viewport={"width": 375, "height": 740}))
    shoot(phone, os.path.join(screenshots, "dashboard-phone.png"))
