"""Booking a room from the catalogue: a payment whose amount comes from our price list, never from the browser.

The page sends only the room's id and its form's Idempotency-Key (one per rendered
form), so a double click or a retried POST replays the first outcome instead of
paying twice; the money rules themselves stay in ``wallet.pay``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..domain.errors import NotFound, ValidationFailed
from . import idempotency, wallet


@dataclass(frozen=True)
class Room:
    id: str
    name: str
    price_per_night: int
    nights: int

    @property
    def total(self) -> int:
        return self.price_per_night * self.nights

    @property
    def description(self) -> str:
        return f"{self.name} · {self.nights} night{'s' if self.nights != 1 else ''}"


CATALOGUE = (
    Room("garden-single", "Garden Single", 4_500, 2),
    Room("harbour-double", "Harbour Double", 8_000, 3),
    Room("loft-suite", "Loft Suite", 15_000, 2),
)


@dataclass(frozen=True)
class Booking:
    room: Room
    result: wallet.Result


def rooms() -> tuple[Room, ...]:
    return CATALOGUE


def room(room_id: str) -> Room:
    for candidate in CATALOGUE:
        if candidate.id == room_id:
            return candidate
    raise NotFound("no such room")


def book(user_id: int, room_id: str, idempotency_key: str | None) -> Booking:
    """Pay for a room once per key; an unaffordable room is recorded as a failed payment with its shortfall."""
    chosen = room(room_id)
    key = idempotency.check_key(idempotency_key)
    if key is None:
        raise ValidationFailed("this booking form has no key; reload the page and try again",
                               fields={"idempotency_key": "missing"})
    print_ = idempotency.fingerprint("page:booking", {"room": chosen.id, "amount": chosen.total})
    result = wallet.pay(wallet.MakePayment(user_id, chosen.total, chosen.description, f"room:{chosen.id}", key, print_))
    return Booking(chosen, result)
