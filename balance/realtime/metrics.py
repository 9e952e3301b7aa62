"""``GET /metrics``: this worker's counters (cache hits and misses, sockets, deliveries, outbox, GC pauses)."""
from __future__ import annotations

import os

from flask import Blueprint, current_app

from ..runtime import gc_stats

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """Per-process counters, for the benchmark and for operators; numbers only, no user data."""
    ext = current_app.extensions
    gateway = ext["balance.gateway"]
    return {
        "pid": os.getpid(),
        "sockets": len(gateway.sockets),
        "gateway": dict(gateway.stats),
        "cache": ext["balance.cache"].stats.as_dict(),
        "outbox": dict(ext["balance.publisher"].stats),
        "gc": gc_stats(),
    }
