"""Reading JSON request bodies exactly: numbers with a fraction become ``Decimal``; NaN, Infinity and a name given
twice in one object are refused."""
from __future__ import annotations

import json
from decimal import Decimal

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from ..domain.errors import ValidationFailed


def _no_constants(name: str):
    raise ValueError(f"{name} is not allowed")


class _TwiceNamed(ValueError):
    pass


def _unique_names(pairs: list) -> dict:
    """``{"amount": 1, "amount": 1000}`` means 1,000 to Python's json and 1 to some other parsers (a proxy's, a
    log's): for a money request that ambiguity is refused, not resolved."""
    body = dict(pairs)
    if len(body) != len(pairs):
        seen = set()
        for name, _ in pairs:
            if name in seen:
                raise _TwiceNamed(f"the body names {name!r} more than once")
            seen.add(name)
    return body


def json_object() -> dict:
    """The request body as a JSON object, or a clear 400."""
    if not request.is_json:
        raise ValidationFailed("send a JSON object with Content-Type: application/json")
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body has no length to refuse up front, and werkzeug stops reading it at the limit without a
        # word: what was read is a prefix, so this would say "not valid JSON" about a body that is too large.
        raise RequestEntityTooLarge()
    try:
        body = json.loads(raw or b"null", parse_float=Decimal, parse_constant=_no_constants,
                          object_pairs_hook=_unique_names)
    except _TwiceNamed as exc:
        raise ValidationFailed(str(exc)) from None
    except UnicodeDecodeError:
        raise ValidationFailed("the body is not valid JSON: it is not UTF-8 text") from None
    except ValueError as exc:
        if "int_max_str_digits" in str(exc) or "integer string conversion" in str(exc):  # Python's own guard
            raise ValidationFailed("the body is not valid JSON here: a number in it has too many digits") from None
        raise ValidationFailed(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValidationFailed("the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    return body
