"""HTML forms read into the API's own schemas, so a form and a JSON body obey the same rules.

Form fields arrive as text: an amount is turned into a ``Decimal`` first (as the
JSON reader does), and the schema's messages are made into sentences for people.
"""
from __future__ import annotations

import re
from decimal import Decimal

from ..api.schemas import ProcessSchema, RegisterSchema, TopupSchema, load
from ..domain.errors import ValidationFailed
from ..domain.money import DECIMALS
from ..services import idempotency

# ASCII digits only (``\d`` would take ``１２``), commas only between groups of three.
_WRITTEN_AMOUNT = re.compile(r"-?(?:[1-9][0-9]{0,2}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?")
_NOT_A_NUMBER = "Must be a number in digits 0-9, like 1250 or 1,250.50."
_LENGTH = re.compile(r"^(Shorter than minimum|Longer than maximum) length (\d+)\.$")
_BETWEEN = re.compile(r"^Length must be between (\d+) and (\d+)\.$")


def _sentence(message: str) -> str:
    found = _LENGTH.match(message)
    if found:
        return f"Use {'at least' if found.group(1).startswith('Shorter') else 'at most'} {found.group(2)} characters."
    found = _BETWEEN.match(message)
    if found:
        return f"Use {found.group(1)} to {found.group(2)} characters."
    if message == "Missing data for required field.":
        return "This field is required."
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else message + "."


def _load(schema, data: dict) -> dict:
    try:
        return load(schema, data)
    except ValidationFailed as error:
        raise ValidationFailed(error.message, fields={k: _sentence(v) for k, v in error.fields.items()}) from None


def _amount(text: str) -> Decimal:
    """``"1,250.50"`` -> ``Decimal("1250.50")``, read as a person wrote it; the schema then applies the money rules.

    A comma anywhere but between thousands (``10,00``, ``1,,0,0``) or more decimals
    than the currency has, even zeros (``1.500``), most likely means another
    convention than ours, so it is refused rather than guessed at: dropping the
    commas or the zeros would ask for a different amount than the person meant.
    Exponents (``1e2``), which the JSON API takes, are no way to write money by hand.
    """
    found = _WRITTEN_AMOUNT.fullmatch(text.strip())
    if not found:
        raise ValidationFailed("amount is not a number", fields={"amount": _NOT_A_NUMBER})
    if len(found.group(1) or "") > DECIMALS:
        raise ValidationFailed("amount has too many decimals", fields={"amount": f"At most {DECIMALS} decimals."})
    return Decimal(found.group(0).replace(",", ""))


def signup(form) -> dict:
    data = {"email": form.get("email", "").strip(), "password": form.get("password", ""),
            "name": form.get("name", "").strip() or None}
    try:
        return _load(RegisterSchema, data)
    except ValidationFailed as error:
        if data["email"]:
            raise
        raise ValidationFailed(error.message, fields={**error.fields, "email": "Enter your email address."}) from None


def topup(form) -> dict:
    text = form.get("amount", "")
    if not text.strip():
        raise ValidationFailed("some fields are not valid", fields={"amount": "Enter an amount."})
    return _load(TopupSchema, {"amount": _amount(text), "description": form.get("description", "").strip() or None})


def decision(form) -> dict:
    """An admin's decision: ``approve`` or ``reject`` and an optional note (the API's process schema)."""
    choice = form.get("decision", "")
    if choice not in ("approve", "reject"):
        raise ValidationFailed("choose approve or reject", fields={"decision": "Choose approve or reject."})
    data = _load(ProcessSchema, {"status": "success" if choice == "approve" else "failed",
                                   "admin_notes": form.get("note", "").strip() or None})
    return {"approve": choice == "approve", "note": data["admin_notes"]}


def keyed(form, endpoint: str, data: dict) -> tuple[str | None, str | None]:
    """The form's Idempotency-Key (one per rendered form) and the fingerprint of what it asks for."""
    key = idempotency.check_key(form.get("idempotency_key") or None)
    return key, (idempotency.fingerprint(endpoint, data) if key else None)
