"""Errors as named values.

Every failure a caller can act on has its own class; entrypoints map them to HTTP,
socket and HTML answers in one place (``balance.errors``), so a service never
decides a status code.
"""
from __future__ import annotations


class BalanceError(Exception):
    """Base of every error this service reports to a caller."""

    code = "error"

    def __init__(self, message: str, *, fields: dict | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.details = details or {}


class ValidationFailed(BalanceError):
    code = "validation_error"


class InvalidAmount(ValidationFailed):
    code = "invalid_amount"


class AuthenticationFailed(BalanceError):
    code = "invalid_credentials"


class Forbidden(BalanceError):
    code = "forbidden"


class OwnTopup(Forbidden):
    """Four eyes: the admin who asked for a top-up may not decide it; another admin must."""

    code = "own_topup"


class NotFound(BalanceError):
    code = "not_found"


class Conflict(BalanceError):
    code = "conflict"


class EmailTaken(Conflict):
    code = "email_taken"


class AlreadyProcessed(Conflict):
    code = "already_processed"


class ServiceBusy(BalanceError):
    """The worker's changes already hold all the database connections it lets changes have: try again."""

    code = "service_busy"


class AccountBusy(ServiceBusy):
    """Too many of this caller's changes are already running (one is stuck on its wallet's lock): try again."""

    code = "account_busy"


class IdempotencyKeyReused(BalanceError):
    code = "idempotency_key_reused"


class LedgerError(BalanceError):
    """A rule of double-entry bookkeeping would be broken."""

    code = "ledger_error"


class UnbalancedEntry(LedgerError):
    code = "unbalanced_entry"


class InsufficientFunds(LedgerError):
    code = "insufficient_balance"
