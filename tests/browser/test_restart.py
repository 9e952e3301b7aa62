"""A tab outlives its server: after a restart it reconnects by itself and shows what happened meanwhile."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from balance.services import wallet

pytestmark = pytest.mark.browser


def test_after_the_server_restarts_the_tab_reconnects_and_shows_the_right_balance(own_site):
    site = own_site
    admin, alice = site.admin(), site.user("alice")
    site.fund(alice, admin, 20)
    page = site.page_for(alice)
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "live")
    expect(page.locator("#balance")).to_have_text("$20.00")
    pending = site.request_topup(alice, 30, "While you were away")
    page.evaluate("window.__sameDocument = true")
    # Cut the server only once the socket has moved from polling to websocket: killed mid-upgrade, Chromium
    # leaves the long-poll's closed connection unread and the tab only notices at the ping timeout (45 s).
    expect(status).to_have_attribute("data-transport", "websocket")

    site.server.kill()
    expect(status).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#refresh-balance")).to_be_disabled()
    with site.app.app_context():                      # decided while the server is down: no event can be sent
        wallet.process_topup(wallet.ProcessTopup(pending, admin.id, True))
    site.server.start()

    expect(status).to_have_attribute("data-state", "live", timeout=15_000)
    expect(page.locator("#balance")).to_have_text("$50.00")
    expect(page.locator(".toast-text", has_text="+$30.00")).to_have_text("+$30.00 · Balance: $50.00")
    expect(page.locator("#transactions tr.tx", has_text="While you were away").locator(".badge")).to_have_text(
        "Approved")
    assert page.evaluate("window.__sameDocument") is True

    site.fund(alice, admin, 5)                        # and it is live again
    expect(page.locator("#balance")).to_have_text("$55.00")
