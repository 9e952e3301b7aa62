"""Tables that would grow with every change forever are kept to what may still be needed, in every worker.

- published outbox rows older than ``OUTBOX_RETENTION_HOURS`` (the ledger is the history;
  the outbox is read only for what is unpublished and for a worker catching up);
- idempotency keys older than ``IDEMPOTENCY_RETENTION_HOURS`` (a client retries within
  minutes or hours, not months).

Each kept forever grew by ~600 bytes per change. A pass deletes a batch at a time, with a
pause between batches so requests get the database in between; several workers pruning at
once delete each row once.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from .services import idempotency, outbox

log = logging.getLogger("BalanceGateway")

PRUNE_EVERY = 60.0  # seconds between two passes (each worker)
BATCHES_PER_PASS = 50  # a backlog (the first pass after an upgrade) goes over several passes, not in one long run


def prunings(config) -> list[tuple[str, object, int]]:
    """(what, prune one batch -> rows deleted, batch size) for each table whose retention is set (0: kept forever)."""
    chosen = []
    if config.get("OUTBOX_RETENTION_HOURS"):
        keep = timedelta(hours=config["OUTBOX_RETENTION_HOURS"])
        chosen.append(("published outbox rows", lambda: outbox.prune_published(keep), outbox.PRUNE_BATCH))
    if config.get("IDEMPOTENCY_RETENTION_HOURS"):
        keys = timedelta(hours=config["IDEMPOTENCY_RETENTION_HOURS"])
        chosen.append(("idempotency keys", lambda: idempotency.prune_older_than(keys), idempotency.PRUNE_BATCH))
    return chosen


def prune_once(chosen) -> None:
    for what, prune, batch in chosen:
        try:
            for _ in range(BATCHES_PER_PASS):
                if prune() < batch:
                    break
                time.sleep(0.05)
        except Exception:
            log.exception("pruning %s failed; will try again", what)


def prune_forever(app, chosen, interval: float = PRUNE_EVERY) -> None:
    while True:
        time.sleep(interval)
        try:
            with app.app_context():
                prune_once(chosen)
        except Exception:  # noqa: BLE001 - the loop outlives any one pass
            log.exception("a pruning pass failed; will try again")
