"""Server-rendered HTML pages (sign-up, log-in, dashboard, admin)."""
from __future__ import annotations


def init_app(app) -> None:
    """Register the page blueprints (filled in by the pages work)."""
