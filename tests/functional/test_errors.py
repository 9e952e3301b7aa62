"""Every error is the JSON body ``{"error": {"code", "message", "fields"?}}`` with a fitting status; nothing leaks."""
from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from balance.database import NoAnswer
from tests.support.api import assert_error


@pytest.mark.parametrize(("method", "path"), [("GET", "/nowhere"), ("POST", "/refunds"),
                                              ("GET", "/auth"), ("GET", "/transactions/topup/pending/extra")])
def test_an_unknown_route_is_a_json_404(client, method, path):
    assert_error(client.open(path, method=method), 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/balance"), ("GET", "/auth/login"), ("PUT", "/transactions"),
                                              ("GET", "/transactions/topup/x/process"), ("POST", "/balance"),
                                              ("GET", "/transactions/topup"), ("GET", "/transactions/payment"),
                                              ("DELETE", "/transactions/payment")])
def test_a_wrong_method_is_a_json_405_that_names_the_methods_the_address_takes(client, method, path):
    reply = client.open(path, method=method)
    error = assert_error(reply, 405, "method_not_allowed")
    allowed = {m.strip() for m in reply.headers["Allow"].split(",")}
    assert method not in allowed and allowed - {"HEAD", "OPTIONS"}
    named = ", ".join(sorted(allowed - {"HEAD", "OPTIONS"}))  # what a person would use; the Allow header has all
    assert error["message"] == f"{method} is not allowed here; this address takes {named}"


def test_an_api_error_is_json_even_when_a_browser_asks_for_html(client, auth):
    _, user = auth.new_user()
    reply = client.get("/transactions/missing", headers={**user, "Accept": "text/html"})
    assert_error(reply, 404, "not_found")


def test_an_unexpected_failure_is_a_generic_json_500_that_leaks_nothing(app, client):
    @app.get("/api/explode")
    def explode():
        raise RuntimeError("secret connection string postgres://u:hunter2@db")

    reply = client.get("/api/explode")

    error = assert_error(reply, 500, "internal_error")
    assert "hunter2" not in reply.get_data(as_text=True)
    assert error["message"] == "something went wrong on our side"


def test_validation_errors_carry_fields_and_other_errors_do_not(client, auth):
    _, user = auth.new_user()
    with_fields = assert_error(client.post("/transactions/topup", json={}, headers=user), 400, "validation_error")
    assert with_fields["fields"] == {"amount": "Missing data for required field."}
    without = assert_error(client.get("/balance"), 401, "unauthorized")
    assert "fields" not in without


@pytest.mark.parametrize(("orig", "invalidated", "message"), [
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False,
     "the database did not answer in time; please try again"),
    (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), False,
     "the database did not answer in time; please try again"),
    (NoAnswer("PostgreSQL did not answer within 35 s; the connection was closed"), True,
     "the database did not answer in time; please try again"),
    (psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"), True,
     "the database connection was lost; please try again"),
    (psycopg.errors.DeadlockDetected("deadlock detected"), False,
     "the database could not do this right now; please try again"),
    (psycopg.OperationalError('connection to server at "10.0.0.9", port 5432 failed: Connection refused'), False,
     "the database cannot be reached right now; please try again"),
], ids=["statement-timeout", "lock-timeout", "no-answer", "connection-lost", "deadlock", "unreachable"])
def test_a_database_that_cannot_do_it_now_is_a_503_to_retry_that_says_which_way_it_failed(app, client, orig,
                                                                                          invalidated, message):
    @app.get("/api/database-trouble")
    def trouble():
        raise OperationalError.instance("SELECT 1", None, orig, psycopg.Error, connection_invalidated=invalidated)

    reply = client.get("/api/database-trouble")
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "1"
    assert reply.get_json() == {"error": {"code": "database_unavailable", "message": message}}
    assert "10.0.0.9" not in reply.get_data(as_text=True)
