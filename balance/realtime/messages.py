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

Anything else on the channel is logged and dropped, with one exception: an event whose
name this server does not know at all (neither a user's nor the admins') is skipped and
the message's other events are delivered, so that during a rolling deploy the workers
still on older code deliver what they can of a message from newer code instead of
dropping all of it. A known name in the wrong list is still an error, and so is a
message with no event this server knows, or one with a ``seq`` whose ``balance_updated``
is not among them (a socket would take that seq and miss the change).

Each known event's ``data`` must carry the fields the clients read, of the right JSON
type (``PAYLOADS``; more fields are let through, for newer code): a browser handed
``"newBalance": "lots"`` or ``NaN`` (not even JSON to it) shows garbage or drops the packet.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

CHANNEL = "balance:updates"

USER_EVENTS = frozenset(
    {"balance_updated", "transaction_completed", "transaction_failed", "balance_insufficient", "transaction_created"}
)
ADMIN_EVENTS = frozenset({"topup_requested", "topup_processed"})


class InvalidMessage(ValueError):
    pass


_NUMBER = ((int, float), "a number")
_WHOLE = ((int,), "a whole number")
_TEXT = ((str,), "a string")
_TEXT_OR_NULL = ((str, type(None)), "a string or null")

# What each event's data must hold (``wire.event`` writes exactly these; tests/unit/test_bus_messages.py checks it).
PAYLOADS = {
    "balance_updated": {"newBalance": _NUMBER, "previousBalance": _NUMBER, "transactionId": _TEXT,
                        "transactionType": _TEXT, "amount": _NUMBER, "timestamp": _TEXT, "seq": _WHOLE},
    "transaction_completed": {"transactionId": _TEXT, "transactionType": _TEXT, "amount": _NUMBER, "status": _TEXT,
                              "newBalance": _NUMBER, "timestamp": _TEXT},
    "transaction_failed": {"transactionId": _TEXT, "transactionType": _TEXT, "amount": _NUMBER, "reason": _TEXT,
                           "timestamp": _TEXT},
    "balance_insufficient": {"transactionId": _TEXT, "requiredAmount": _NUMBER, "currentBalance": _NUMBER,
                             "shortfall": _NUMBER, "timestamp": _TEXT},
    "transaction_created": {"transactionId": _TEXT, "transactionType": _TEXT, "amount": _NUMBER, "status": _TEXT,
                            "description": _TEXT_OR_NULL, "timestamp": _TEXT},
    "topup_requested": {"transactionId": _TEXT, "userId": _WHOLE, "userEmail": _TEXT, "amount": _NUMBER,
                        "description": _TEXT_OR_NULL, "timestamp": _TEXT},
    "topup_processed": {"transactionId": _TEXT, "userId": _WHOLE, "status": _TEXT, "timestamp": _TEXT},
}
_ABSENT = object()


def _check_data(name: str, data: dict) -> None:
    for field_name, (types, what) in PAYLOADS[name].items():
        value = data.get(field_name, _ABSENT)
        if value is _ABSENT:
            raise InvalidMessage(f"{name} needs {field_name} ({what})")
        if isinstance(value, bool) or not isinstance(value, types):
            raise InvalidMessage(f"{name}.{field_name} must be {what}")


def _no_constants(name: str):
    raise InvalidMessage(f"{name} is not JSON")


JS_SAFE = 2**53 - 1  # the largest integer a JavaScript number holds exactly


def _js_int(text: str) -> int:
    value = int(text)
    if abs(value) > JS_SAFE:
        raise InvalidMessage(f"{text[:30]} is beyond what a JavaScript number holds exactly")
    return value


def _js_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: Python reads inf, and json writes it as Infinity, which is not JSON
        raise InvalidMessage(f"{text[:30]} is beyond what a JavaScript number holds")
    return value


@dataclass(frozen=True)
class Message:
    id: int | None
    audience: str
    user_id: int | None
    seq: int | None
    events: tuple[tuple[str, dict], ...]
    admin_events: tuple[tuple[str, dict], ...] = ()
    skipped: tuple[str, ...] = ()  # event names this server does not know, left out


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
            # NaN, Infinity, 1e400 (inf) would reach the browser as a packet it cannot parse; 2**64 as a wrong number
            raw = json.loads(raw, parse_constant=_no_constants, parse_float=_js_float, parse_int=_js_int)
        except InvalidMessage:
            raise
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
    parsed, skipped = _events(events, allowed)
    names = [name for name, _ in parsed]
    for name, data in parsed:
        if name == "balance_updated" and (seq is None or data.get("seq") != seq):
            raise InvalidMessage("balance_updated needs the message's seq, also in its data")
    if seq is not None and "balance_updated" not in names:
        # a socket takes the message's seq as its own: without the update it would skip a change unnoticed
        raise InvalidMessage("a message with a seq must carry its balance_updated")
    for_admins = raw.get("admin_events")
    if for_admins is None:
        for_admins = []
    if not isinstance(for_admins, list) or (for_admins and audience != "user"):
        raise InvalidMessage("admin_events must be a list, and only in a 'user' message")
    parsed_for_admins, skipped_for_admins = _events(for_admins, ADMIN_EVENTS)
    if not parsed and not parsed_for_admins:
        raise InvalidMessage(f"no event among {sorted(allowed | ADMIN_EVENTS)}")
    return Message(_int(raw.get("id"), "id", optional=True), audience, user_id, seq, parsed,
                   parsed_for_admins, skipped + skipped_for_admins)


def _events(items: list, allowed: frozenset) -> tuple[tuple[tuple[str, dict], ...], tuple[str, ...]]:
    """The events among ``allowed``, and the names of those unknown to this server (skipped)."""
    parsed, skipped = [], []
    for item in items:
        name = item.get("event") if isinstance(item, dict) else None
        if not isinstance(name, str) or not isinstance(item.get("data"), dict):
            raise InvalidMessage("each event needs an 'event' name and a 'data' object")
        if name in allowed:
            _check_data(name, item["data"])
            parsed.append((name, item["data"]))
        elif name in USER_EVENTS or name in ADMIN_EVENTS:
            raise InvalidMessage(f"{name} does not belong in this list of events (allowed: {sorted(allowed)})")
        else:
            skipped.append(name)
    return tuple(parsed), tuple(skipped)
