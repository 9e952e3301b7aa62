"""Integer ids in URLs beyond what a database id can be (64-bit signed) name nothing: 404, never a 500.

Ids are BIGINT on PostgreSQL and INTEGER on SQLite, whose driver cannot even send a larger number
(``OverflowError``). Every route with an ``<int:...>`` part is walked, so one added later is covered too.
"""
from __future__ import annotations

import re

import pytest

HTML = {"Accept": "text/html,application/xhtml+xml"}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
INT_PART = re.compile(r"<int(?:\([^)]*\))?:\w+>")
OTHER_PART = re.compile(r"<[^>]+>")
LARGEST = "9223372036854775807"  # 2**63 - 1
BEYOND = {
    "2**63": "9223372036854775808",
    "2**64": "18446744073709551616",
    "23 digits": "12345678901234567890123",
    "100 digits": "9" * 100,
}


@pytest.fixture
def admin(client, auth):
    """An admin logged in on ``client`` both ways: the pages' cookie and the API's bearer header."""
    _, headers = auth.new_admin("boss@example.com")
    token = TOKEN.search(client.get("/login", headers=HTML).get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "boss@example.com", "password": "admin-password-1", "csrf_token": token},
                headers=HTML)
    return headers


def integer_id_routes(app) -> list[tuple[str, str]]:
    """``(method, rule)`` for every route with an integer part."""
    return sorted((method, rule.rule) for rule in app.url_map.iter_rules() if INT_PART.search(rule.rule)
                  for method in rule.methods - {"HEAD", "OPTIONS"})


def address(rule: str, number: str) -> str:
    return OTHER_PART.sub("x", INT_PART.sub(number, rule))


@pytest.mark.parametrize("number", BEYOND.values(), ids=BEYOND.keys())
def test_a_user_id_beyond_64_bits_is_the_404_page(client, admin, number):
    reply = client.get(f"/admin/users/{number}", headers=HTML)
    assert reply.status_code == 404 and "Page not found" in reply.get_data(as_text=True)


@pytest.mark.parametrize("number", [LARGEST, "0", "000"])
def test_an_id_within_64_bits_that_names_nobody_is_still_looked_up_and_not_found(client, admin, number):
    assert client.get(f"/admin/users/{number}", headers=HTML).status_code == 404


def test_a_real_user_id_still_shows_their_history(client, auth, admin):
    user_id, _ = auth.new_user("ann@example.com")
    reply = client.get(f"/admin/users/{user_id}", headers=HTML)
    assert reply.status_code == 200 and "ann@example.com" in reply.get_data(as_text=True)


@pytest.mark.parametrize("number", BEYOND.values(), ids=BEYOND.keys())
def test_every_route_with_an_integer_id_answers_404_beyond_64_bits(app, client, admin, number):
    routes = integer_id_routes(app)
    assert ("GET", "/admin/users/<int:user_id>") in routes, routes
    for method, rule in routes:
        if method == "GET":  # the admin gets that far: within range the id is looked up, and not found
            assert client.get(address(rule, LARGEST), headers=admin).status_code == 404, rule
        reply = client.open(address(rule, number), method=method, headers=admin)
        assert reply.status_code == 404, (method, rule, reply.status_code, reply.get_data(as_text=True)[:300])
