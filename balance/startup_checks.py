"""What a serving process checks in the database before it takes requests.

One deployment has one currency. Wallets are opened in ``CURRENCY`` and keep it; the
room prices, the pages and every amount a client sends are read in ``CURRENCY`` too, so
a wallet opened in another one would be charged a price in the wrong currency and shown
in the wrong one. ``CURRENCY`` is therefore fixed once a wallet exists: a process whose
setting differs from the wallets' refuses to start (``create_app`` reads no database, so
this runs where serving starts: ``wsgi.py`` and ``python app.py``).
"""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy.exc import DBAPIError

from .config import ConfigError
from .services import accounts

log = logging.getLogger(__name__)


def refuse_another_currency(app) -> None:
    """Stop the start if wallets exist in a currency other than ``CURRENCY``; if the database cannot be read now
    (it is starting too), say so and go on: requests will find out, and the next start checks again."""
    with app.app_context():
        configured = current_app.config["CURRENCY"]
        try:
            other = accounts.wallet_currency_other_than(configured)
        except DBAPIError as exc:
            log.warning("could not check the wallets' currency at start: %s", exc.orig)
            return
    if other is not None:
        raise ConfigError(f"CURRENCY is {configured} but wallets were opened in {other}; a deployment has one "
                          f"currency, fixed once a wallet exists: set CURRENCY={other}")
