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
LIMIT_CEILING = 10**15  # no configured limit above this: beyond it ``to_wire`` is no longer exact

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
    digits, exponent = _significand(number)
    if exponent < -DECIMALS:
        raise InvalidAmount(
            f"{field} may have at most {DECIMALS} decimals", fields={field: f"at most {DECIMALS} decimals"}
        )
    if number <= 0:
        raise InvalidAmount(f"{field} must be greater than zero", fields={field: "must be greater than zero"})
    if number > Decimal(maximum_minor).scaleb(-DECIMALS):
        limit = format_plain(maximum_minor)
        raise InvalidAmount(f"{field} must not exceed {limit}", fields={field: f"must not exceed {limit}"})
    return int(digits) * 10 ** (exponent + DECIMALS)


def _significand(number: Decimal) -> tuple[str, int]:
    """``number``'s digits without trailing zeros and the matching exponent (``12.500`` -> ``("125", -1)``).

    Read from the digits themselves, never through ``Decimal`` arithmetic, which rounds
    to the context's 28 digits (``0.0100000000000000000000000000001`` would become
    ``0.01``) and overflows on huge exponents. The caller bounds the value before
    turning the digits into an ``int``.
    """
    _, digits, exponent = number.as_tuple()
    text = "".join(map(str, digits))
    significant = text.rstrip("0") or "0"
    return significant, exponent + len(text) - len(significant)


def parse_limit(text: str) -> int:
    """Read a configured amount such as ``"1000000.00"`` into minor units, by the same rules as a wire amount."""
    try:
        return parse_amount(Decimal(str(text).strip()), maximum_minor=LIMIT_CEILING, field="limit")
    except (InvalidOperation, InvalidAmount):
        raise ValueError(f"not a positive amount with at most {DECIMALS} decimals: {text!r}") from None


def to_wire(minor: int | None) -> int | float | None:
    """Minor units to a JSON number in currency units (``1250`` -> ``12.5``, ``5000`` -> ``50``).

    Division by 100 is correctly rounded in IEEE 754, any decimal of at most 15
    significant digits survives the trip through a double, and ``repr`` prints the
    shortest string that round-trips; so the JSON text is exactly the two-decimal
    value for every amount below 10**15 minor units (ten trillion currency units).
    Above about 7 * 10**15 neighbouring cents share a double and this is no longer exact.
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
