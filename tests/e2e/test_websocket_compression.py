"""Browsers offer permessage-deflate on every websocket; the production server declines it (see
balance/realtime/compression.py), so a socket costs no zlib state and a frame no deflate. Clients that
offered it still get their events: the Node hook test's socket.io-client offers it by default."""
from __future__ import annotations

import base64
import os
import socket
from urllib.parse import urlsplit

import pytest


def handshake(base_url: str, token: str, extensions: str | None) -> dict[str, str]:
    """A websocket upgrade to /socket.io/ as a browser sends it; the response's status line and headers."""
    url = urlsplit(base_url)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET /socket.io/?EIO=4&transport=websocket&token={token} HTTP/1.1", f"Host: {url.netloc}",
             "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(4096)
            if not chunk:
                break
            raw += chunk
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {"status": head[0]}
    headers.update({k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:])})
    return headers


@pytest.mark.parametrize("offer", ["permessage-deflate; client_max_window_bits", "permessage-deflate"])
def test_the_server_upgrades_a_browser_websocket_without_compression(cluster, offer):
    user = cluster.api.new_user("zip")

    answer = handshake(cluster.url, user.token, offer)

    assert answer["status"].startswith("HTTP/1.1 101"), answer
    assert "sec-websocket-extensions" not in answer, answer
