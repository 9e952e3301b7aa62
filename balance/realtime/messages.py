"""The ``balance:updates`` message: one per committed change, as JSON.

    {"id": 42,                 # outbox id (optional for other publishers; used to drop repeats)
     "audience": "user",       # "user": to that user's sockets; "admins": to every admin socket
     "user_id": 7,             # required for "user"
     "seq": 12,                # the wallet's seq after the change, or null when the balance did not move
     "events": [{"event": "balance_updated", "data": {...}}, {"event": "transaction_completed", "data": {...}}],
     "admin_events": [{"event": "topup_processed", "data": {...}}]}   # optional, "user" messages only

A change that concerns a user and the admins (an approval, a new top-up request) is
one message: the admins' events ride along in ``admin_events``. A change only the
admins see is an ``admins`` message (other publishers may send those).

Anything else on the channel is logged and dropped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

CHANNEL = "balance:updates"

USER_EVENTS = frozenset(
    {"balance_updated", "transaction_completed", "transaction_failed", "balance_insufficient", "transaction_created"}
)
ADMIN_EVENTS = frozenset({"topup_requested", "topup_processed"})


class InvalidMessage(ValueError):
    pass


@dataclass(frozen=True)
class Message:
    id: int | None
    audience: str
    user_id: int | None
    seq: int | None
    events: tuple[tuple[str, dict], ...]
    admin_events: tuple[tuple[str, dict], ...] = ()


def _int(value, name: str, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage(f"{name} must be an integer")
    return value


def parse(raw: str | bytes | dict) -> Message:
    """Validate a message from the channel (or from the in-process bus)."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidMessage(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidMessage("not a JSON object")
    audience = raw.get("audience", "user")
    if audience not in ("user", "admins"):
        raise InvalidMessage("audience must be 'user' or 'admins'")
    user_id = _int(raw.get("user_id"), "user_id", optional=audience == "admins")
    seq = _int(raw.get("seq"), "seq", optional=True)
    if seq is not None and seq < 1:
        raise InvalidMessage("seq must be positive")
    allowed = USER_EVENTS if audience == "user" else ADMIN_EVENTS
    events = raw.get("events")
    if not isinstance(events, list) or not events:
        raise InvalidMessage("events must be a non-empty list")
    parsed = _events(events, allowed)
    for name, data in parsed:
        if name == "balance_updated" and (seq is None or data.get("seq") != seq):
            raise InvalidMessage("balance_updated needs the message's seq, also in its data")
    for_admins = raw.get("admin_events")
    if for_admins is None:
        for_admins = []
    if not isinstance(for_admins, list) or (for_admins and audience != "user"):
        raise InvalidMessage("admin_events must be a list, and only in a 'user' message")
    return Message(_int(raw.get("id"), "id", optional=True), audience, user_id, seq, parsed,
                   _events(for_admins, ADMIN_EVENTS))


def _events(items: list, allowed: frozenset) -> tuple[tuple[str, dict], ...]:
    parsed = []
    for item in items:
        if not isinstance(item, dict) or item.get("event") not in allowed or not isinstance(item.get("data"), dict):
            raise InvalidMessage(f"each event needs an 'event' among {sorted(allowed)} and a 'data' object")
        parsed.append((item["event"], item["data"]))
    return tuple(parsed)
