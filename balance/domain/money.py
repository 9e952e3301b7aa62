"""Money as integer minor units, and the one place where it crosses the wire.

Inside the service an amount is an ``int`` of minor units (cents). On the wire it
is a JSON number in currency units with at most two decimals. Parsing goes through
``Decimal`` built from the JSON text itself, so ``0.1 + 0.2`` style rounding never
touches a balance.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .errors import InvalidAmount

MINOR_PER_UNIT = 100
DECIMALS = 2

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "AUD": "A$", "CAD": "C$", "VND": "₫"}


def parse_amount(value: object, *, maximum_minor: int, field: str = "amount") -> int:
    """Turn a wire amount into minor units, refusing anything that is not a plain positive money value.

    ``value`` is what the JSON decoder produced with ``parse_float=Decimal``: an
    ``int`` or a ``Decimal``. Booleans, strings, NaN, infinities, zero, negatives,
    more than two decimals and amounts above ``maximum_minor`` are refused.
    """
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise InvalidAmount(f"{field} must be a number", fields={field: "must be a number"})
    number = Decimal(value)
    if not number.is_finite():
        raise InvalidAmount(f"{field} must be a finite number", fields={field: "must be a finite number"})
    try:
        scaled = number.scaleb(DECIMALS)
        minor = int(scaled)
    except (InvalidOperation, OverflowError, ValueError):
        raise InvalidAmount(f"{field} is out of range", fields={field: "out of range"}) from None
    if scaled != minor:
        raise InvalidAmount(
            f"{field} may have at most {DECIMALS} decimals", fields={field: f"at most {DECIMALS} decimals"}
        )
    if minor <= 0:
        raise InvalidAmount(f"{field} must be greater than zero", fields={field: "must be greater than zero"})
    if minor > maximum_minor:
        limit = format_plain(maximum_minor)
        raise InvalidAmount(f"{field} must not exceed {limit}", fields={field: f"must not exceed {limit}"})
    return minor


def parse_limit(text: str) -> int:
    """Read a configured amount such as ``"1000000.00"`` into minor units."""
    try:
        number = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    minor = number.scaleb(DECIMALS)
    if minor != int(minor) or minor <= 0:
        raise ValueError(f"not a positive amount with at most {DECIMALS} decimals: {text!r}")
    return int(minor)


def to_wire(minor: int | None) -> int | float | None:
    """Minor units to a JSON number in currency units (``1250`` -> ``12.5``, ``5000`` -> ``50``).

    Integer division by 100 is correctly rounded in IEEE 754 and ``repr`` prints the
    shortest string that round-trips, so the JSON text is exactly the two-decimal
    value for every amount below 2**53 minor units.
    """
    if minor is None:
        return None
    if minor % MINOR_PER_UNIT == 0:
        return minor // MINOR_PER_UNIT
    return minor / MINOR_PER_UNIT


def format_plain(minor: int) -> str:
    """``150050`` -> ``"1500.50"``: two decimals, no symbol, no grouping."""
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), MINOR_PER_UNIT)
    return f"{sign}{units}.{cents:02d}"


def format_money(minor: int, currency: str) -> str:
    """``15050, "USD"`` -> ``"$150.50"``; grouping for thousands; unknown currencies get a code suffix."""
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), MINOR_PER_UNIT)
    body = f"{units:,}.{cents:02d}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    if symbol:
        return f"{sign}{symbol}{body}"
    return f"{sign}{body} {currency}"
