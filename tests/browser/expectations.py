"""What the browser tests expect of a page, in one place: that it is live, and that every tab shows a
value within one time budget."""
from __future__ import annotations

import time

from playwright.sync_api import expect


def live(page):
    """The page's socket is connected (the live pill says so); returns the page."""
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    return page


def expect_each_within(tabs, selector: str, text: str, started: float, budget: float) -> None:
    """Every tab shows ``text`` in ``selector`` before ``budget`` seconds have passed since ``started``."""
    for tab in tabs:
        remaining_ms = max(1, (budget - (time.monotonic() - started)) * 1000)
        expect(tab.locator(selector)).to_have_text(text, timeout=remaining_ms)
    assert time.monotonic() - started < budget
