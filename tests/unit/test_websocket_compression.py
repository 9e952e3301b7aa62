"""The WSGI middleware that declines websocket compression (the real handshake is in tests/e2e)."""
from __future__ import annotations

import pytest

from balance.realtime.compression import DeclineCompression


def seen_by_app(environ: dict) -> dict:
    seen = {}

    def app(env, start_response):
        seen.update(env)
        return [b""]

    DeclineCompression(app)(environ, lambda *a: None)
    return seen


@pytest.mark.parametrize("upgrade", ["websocket", "WebSocket"])
def test_a_websocket_upgrade_reaches_the_server_without_its_compression_offer(upgrade):
    seen = seen_by_app({"HTTP_UPGRADE": upgrade, "HTTP_CONNECTION": "Upgrade",
                        "HTTP_SEC_WEBSOCKET_EXTENSIONS": "permessage-deflate; client_max_window_bits"})
    assert "HTTP_SEC_WEBSOCKET_EXTENSIONS" not in seen
    assert seen["HTTP_UPGRADE"] == upgrade


def test_other_requests_pass_unchanged():
    environ = {"PATH_INFO": "/balance", "HTTP_SEC_WEBSOCKET_EXTENSIONS": "x"}
    assert seen_by_app(dict(environ)) == environ
