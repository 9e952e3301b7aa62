"""From commit to socket: publisher, outbox relay, balance cache and the ``/balance`` gateway."""
from __future__ import annotations


def init_app(app) -> None:
    """Attach the real-time parts to the app (filled in by the live-balance work)."""
