"""Assertions about the JSON API's answers, shared by the functional tests."""
from __future__ import annotations


def assert_error(reply, status: int, code: str, fields: list[str] | None = None) -> dict:
    """``reply`` is the documented error body ``{"error": {"code", "message", "fields"?}}`` with this status.

    ``fields``, when given, are exactly the field names the body must blame. Returns the error object.
    """
    assert reply.status_code == status, (reply.status_code, reply.get_data(as_text=True)[:500])
    assert reply.is_json, reply.headers.get("Content-Type")
    body = reply.get_json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    if "fields" in error:
        assert error["fields"] and all(isinstance(k, str) and isinstance(v, str) and v
                                       for k, v in error["fields"].items()), error
    if fields is not None:
        assert sorted(error.get("fields", {})) == sorted(fields), error
    return error
