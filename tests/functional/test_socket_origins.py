"""Which pages may open a ``/balance`` socket: the site's own always, ``FRONTEND_URL``'s too, no other site's.

The engine.io handshake (a polling ``GET``, as the seed's hook starts) is where the
``Origin`` is checked, for websocket upgrades as well; the Flask test client sends it
to ``localhost``, so ``http://localhost`` is the site's own origin here.
"""
from __future__ import annotations

import pytest

from tests.support import databases

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
OWN, FRONTEND, OTHER = "http://localhost", "http://localhost:3001", "http://evil.example"


@pytest.fixture(params=[[], [FRONTEND]], ids=["no FRONTEND_URL", "FRONTEND_URL set"])
def frontend(request):
    return request.param


@pytest.fixture
def client(frontend):
    app = databases.make_app("sqlite://", FRONTEND_URL=frontend)
    return app.test_client()


def handshake(client, origin: str | None, **headers):
    return client.get(HANDSHAKE, headers={**({"Origin": origin} if origin else {}), **headers})


def test_the_sites_own_pages_may_open_a_socket_whatever_frontend_url_says(client):
    reply = handshake(client, OWN)
    assert reply.status_code == 200, reply.get_data(as_text=True)


def test_a_client_that_sends_no_origin_is_not_a_browser_page_and_may_connect(client):
    assert handshake(client, None).status_code == 200


def test_the_frontend_url_may_open_a_socket_only_when_it_is_configured(client, frontend):
    assert handshake(client, FRONTEND).status_code == (200 if frontend else 400)


def test_another_sites_page_may_not(client):
    assert handshake(client, OTHER).status_code == 400


def test_behind_a_proxy_the_public_origin_counts_as_the_sites_own(client):
    reply = handshake(client, "https://balance.example.com", **{"X-Forwarded-Proto": "https",
                                                                "X-Forwarded-Host": "balance.example.com"})
    assert reply.status_code == 200
