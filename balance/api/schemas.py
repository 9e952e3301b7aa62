"""Request schemas. Amount fields use the money parser, so the rules live in one place."""
from __future__ import annotations

from functools import cache

from flask import current_app
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from ..domain.errors import InvalidAmount, ValidationFailed
from ..domain.money import parse_amount, parse_limit


class Amount(fields.Field):
    """A positive money amount in currency units with at most two decimals, read into minor units."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_amount(value, maximum_minor=parse_limit(current_app.config["MAX_TRANSACTION_AMOUNT"]))
        except InvalidAmount as exc:
            raise ValidationError(next(iter(exc.fields.values()))) from None


def _text(max_len: int, **kw):
    return fields.String(validate=validate.Length(max=max_len), allow_none=True, load_default=None, **kw)


UNTRIMMED = ("password",)


class Strict(Schema):
    class Meta:
        unknown = RAISE

    @pre_load
    def clean_text(self, data, **kwargs):
        """Trim text (but never a password) before it is validated, so ``" a@b.com "`` is an email address;
        refuse text no database column can hold: NUL characters (PostgreSQL) and lone surrogates (UTF-8)."""
        bad = {name: "must be text without NUL characters or unpaired surrogates"
               for name, value in data.items() if isinstance(value, str) and not _storable(value)}
        if bad:
            raise ValidationError(bad)
        return {name: (value.strip() if isinstance(value, str) and name not in UNTRIMMED else value)
                for name, value in data.items()}


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _new_password():
    return fields.String(required=True, validate=validate.Length(min=8, max=128))


class RegisterSchema(Strict):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = _new_password()
    name = _text(100)


class NewPasswordSchema(Strict):
    """A password being set on an existing account (``create-admin --password``): sign-up's rule."""

    password = _new_password()


class LoginSchema(Strict):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))


class TopupSchema(Strict):
    amount = Amount(required=True)
    description = _text(500)


class PaymentSchema(Strict):
    amount = Amount(required=True)
    description = _text(500)
    reference = _text(100)


class ProcessSchema(Strict):
    status = fields.String(required=True, validate=validate.OneOf(["success", "failed"]))
    admin_notes = _text(500)


def load(schema: type[Schema], body: dict) -> dict:
    """Validate ``body`` against a schema class or raise ``ValidationFailed`` naming each bad field.

    One instance per class serves every request: building a marshmallow schema
    deep-copies its declared fields, a measurable share of a payment's CPU, and
    ``load`` keeps no state on the instance.
    """
    try:
        data = _instance(schema).load(body)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        flat = {k: (v[0] if isinstance(v, list) and v else str(v)) for k, v in messages.items()}
        raise ValidationFailed("some fields are not valid", fields=flat) from None
    return data


@cache
def _instance(schema: type[Schema]) -> Schema:
    return schema()
