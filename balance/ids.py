"""Ids in URLs. Integer ids: only numbers a database id can be, so any other number names nothing (a 404).

Ids are 64-bit signed integers (``BIGINT`` on PostgreSQL, ``INTEGER`` on SQLite).
Werkzeug's ``int`` converter takes any run of digits, and a number past 2**63 - 1 then
fails in the driver (SQLite: ``OverflowError``, a 500) instead of finding no row.
``init_app`` installs this converter as the app's ``int``, so every ``<int:...>`` route,
today's and tomorrow's, answers such a number as it answers an id that does not exist.
"""
from __future__ import annotations

from werkzeug.routing import IntegerConverter, UnicodeConverter, ValidationError

MAX_ID = 2**63 - 1
MIN_ID = -(2**63)


class DatabaseIdConverter(IntegerConverter):
    """Werkzeug's ``int`` (same options), held to the 64-bit signed range whatever ``min``/``max`` a rule gives."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 - Werkzeug's parameter name
        super().__init__(map, *args, **kwargs)
        self.max = MAX_ID if self.max is None else min(self.max, MAX_ID)
        self.min = MIN_ID if self.min is None else max(self.min, MIN_ID)


class TransactionIdConverter(UnicodeConverter):
    """A transaction id in ``/transactions/<id>``, never the name of an action beside it (``topup``, ``payment``).

    Without it ``GET /transactions/topup`` is read as a lookup of a transaction called
    "topup" (a 404 "no such transaction", after asking for a login) when what the
    client got wrong is the method: the route exists for ``POST``. Refusing those
    names here lets the router answer 405 with ``Allow``, as for any other route.
    """

    ACTIONS = frozenset({"topup", "payment"})

    def to_python(self, value: str) -> str:
        if value in self.ACTIONS:
            raise ValidationError()
        return value


def init_app(app) -> None:
    """Call before any route is added: a rule takes its converter when it is added, not when it matches."""
    app.url_map.converters["int"] = DatabaseIdConverter
    app.url_map.converters["transaction_id"] = TransactionIdConverter
