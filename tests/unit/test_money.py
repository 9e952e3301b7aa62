"""Money rules: what the wire may carry, and how minor units go back out exactly."""
from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest

from balance.domain.errors import InvalidAmount, ValidationFailed
from balance.domain.money import format_money, format_plain, parse_amount, parse_limit, to_wire

LIMIT = 100_000_000  # 1,000,000.00 in minor units, the default per-transaction maximum


def parse(value):
    return parse_amount(value, maximum_minor=LIMIT)


def from_json(text: str):
    """What the API's body reader hands the parser: fractions as Decimal, integers as int."""
    return json.loads(text, parse_float=Decimal)


@pytest.mark.parametrize(
    ("wire", "minor"),
    [
        ("1", 100),
        ("50", 5000),
        ("0.01", 1),
        ("0.1", 10),
        ("0.10", 10),
        ("12.5", 1250),
        ("12.50", 1250),
        ("12.500", 1250),  # the value has two decimals; trailing zeros are only spelling
        ("99.99", 9999),
        ("1E2", 10000),
        ("5e-1", 50),
        ("1000000", LIMIT),
        ("1000000.00", LIMIT),
        ("999999.99", LIMIT - 1),
    ],
)
def test_a_plain_positive_amount_with_at_most_two_decimals_becomes_exact_minor_units(wire, minor):
    assert parse(from_json(wire)) == minor


@pytest.mark.parametrize("value", [Decimal("0.30"), Decimal("0.1") + Decimal("0.2")])
def test_decimal_arithmetic_never_leaks_float_rounding(value):
    assert parse(value) == 30


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Decimal("0.001"), "at most 2 decimals"),
        (Decimal("12.505"), "at most 2 decimals"),
        (Decimal("0.009"), "at most 2 decimals"),
        (Decimal("1e-1000000"), "at most 2 decimals"),
        # more significant digits than Decimal's default 28-digit context: must not be rounded to 0.01
        (Decimal("0.0100000000000000000000000000001"), "at most 2 decimals"),
        (Decimal("0.01" + "0" * 60 + "1"), "at most 2 decimals"),
        (Decimal("1234567.891234567891234567891234"), "at most 2 decimals"),
        (0, "greater than zero"),
        (Decimal("0"), "greater than zero"),
        (Decimal("0.00"), "greater than zero"),
        (Decimal("-0"), "greater than zero"),
        (-1, "greater than zero"),
        (Decimal("-0.01"), "greater than zero"),
        (Decimal("-50"), "greater than zero"),
        (Decimal("NaN"), "finite"),
        (Decimal("sNaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (Decimal("-Infinity"), "finite"),
        (True, "must be a number"),
        (False, "must be a number"),
        ("50", "must be a number"),
        ("12.50", "must be a number"),
        ("", "must be a number"),
        (None, "must be a number"),
        ([50], "must be a number"),
        ({"value": 50}, "must be a number"),
        (50.0, "must be a number"),  # a float has already been rounded: only exact numbers are accepted
        (1000000.01, "must be a number"),
        (LIMIT // 100 + 1, "must not exceed 1000000.00"),
        (Decimal("1000000.01"), "must not exceed 1000000.00"),
        (10**30, "must not exceed 1000000.00"),
        (10**400, "must not exceed 1000000.00"),
        (Decimal("1e400"), "must not exceed 1000000.00"),
        (Decimal("1e999999"), "must not exceed 1000000.00"),
        (Decimal("9e999999999"), "must not exceed 1000000.00"),
    ],
    ids=repr,
)
def test_anything_but_a_plain_positive_money_value_is_refused_with_a_reason(value, message):
    with pytest.raises(InvalidAmount) as refused:
        parse(value)
    assert message in refused.value.message
    assert message in refused.value.fields["amount"]


def test_an_invalid_amount_is_a_validation_failure_naming_the_field():
    with pytest.raises(ValidationFailed) as refused:
        parse_amount(Decimal("0.001"), maximum_minor=LIMIT, field="price")
    assert refused.value.code == "invalid_amount"
    assert list(refused.value.fields) == ["price"]


def test_the_maximum_is_configurable_and_inclusive():
    assert parse_amount(250, maximum_minor=25_000) == 25_000
    with pytest.raises(InvalidAmount, match="must not exceed 250.00"):
        parse_amount(Decimal("250.01"), maximum_minor=25_000)


@pytest.mark.parametrize(("text", "minor"), [("1000000.00", LIMIT), ("250", 25_000), ("0.01", 1), (" 5.5", 550)])
def test_a_configured_limit_is_read_into_minor_units(text, minor):
    assert parse_limit(text) == minor


@pytest.mark.parametrize("text", ["", "abc", "0", "-5", "0.001", "NaN", "Infinity", "1e999999999", "10000000000000.01"])
def test_a_configured_limit_that_is_not_a_positive_amount_is_refused(text):
    with pytest.raises(ValueError):
        parse_limit(text)


# --- to_wire: exact on the way out ------------------------------------------------------------------------------

def exact_back(minor: int) -> Decimal:
    """What a client that parses JSON numbers exactly reads from ``to_wire``'s JSON text."""
    return json.loads(json.dumps(to_wire(minor)), parse_float=Decimal, parse_int=Decimal)


@pytest.mark.parametrize(
    ("minor", "text"),
    [(0, "0"), (1, "0.01"), (10, "0.1"), (99, "0.99"), (100, "1"), (1250, "12.5"), (1999, "19.99"), (5000, "50"),
     (3750, "37.5"), (LIMIT, "1000000"), (LIMIT - 1, "999999.99"), (-250, "-2.5")],
)
def test_minor_units_go_on_the_wire_as_the_shortest_exact_number(minor, text):
    assert json.dumps(to_wire(minor)) == text


def test_whole_units_are_json_integers_and_none_stays_none():
    assert isinstance(to_wire(5000), int)
    assert to_wire(None) is None


@pytest.mark.parametrize(
    "minor",
    [1, 3, 7, 10, 11, 29, 57, 99, 101, 1005, 1015, 1_000_001, 2**31 + 1, 2**32 - 1, 10**13 + 1, 2**50 // 100 * 100 + 1,
     10**15 - 1, 10**15 - 99, 999_999_999_999_901],
)
# to_wire is documented exact below 10**15 minor units (ten trillion currency units); per-transaction
# amounts stop at 10**8 and configured limits at 10**15.
def test_to_wire_reads_back_as_exactly_the_amount_at_awkward_values(minor):
    assert exact_back(minor) == Decimal(minor) / 100


def test_to_wire_reads_back_exactly_over_a_random_sweep():
    rng = random.Random(20261128)
    samples = [rng.randrange(1, 10**scale) for scale in range(1, 16) for _ in range(2_000)]
    samples += [rng.randrange(10**15 - 10**9, 10**15) for _ in range(2_000)]
    wrong = [m for m in samples if exact_back(m) != Decimal(m) / 100]
    assert wrong == []


def test_every_amount_a_client_can_send_comes_back_unchanged():
    rng = random.Random(7)
    for _ in range(5_000):
        minor = rng.randrange(1, LIMIT + 1)
        assert parse(from_json(json.dumps(to_wire(minor)))) == minor


# --- formatting for people -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("minor", "text"),
    [(0, "0.00"), (1, "0.01"), (50, "0.50"), (150050, "1500.50"), (LIMIT, "1000000.00"), (-1, "-0.01"),
     (-150050, "-1500.50")],
)
def test_format_plain_writes_two_decimals_without_symbol_or_grouping(minor, text):
    assert format_plain(minor) == text


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (15050, "USD", "$150.50"),
        (0, "USD", "$0.00"),
        (5, "EUR", "€0.05"),
        (123456789, "GBP", "£1,234,567.89"),
        (100000, "AUD", "A$1,000.00"),
        (-2550, "USD", "-$25.50"),
        (1234500, "CHF", "12,345.00 CHF"),
        (-1, "XYZ", "-0.01 XYZ"),
    ],
)
def test_format_money_uses_the_symbol_groups_thousands_and_suffixes_unknown_currencies(minor, currency, text):
    assert format_money(minor, currency) == text
