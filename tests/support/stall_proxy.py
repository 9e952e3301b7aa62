"""A TCP proxy that can go silent: what a client sees of a frozen server, or of a partition that drops packets.

Connections stay open while frozen; bytes are simply not passed on until ``thaw``.
Stopping a real server process (SIGSTOP) would do the same, but not to a shared one,
and not to a server that is not ours (``TEST_DATABASE_URL``); this works in front of any.
"""
from __future__ import annotations

import select
import socket
import threading


class StallProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._freeze_after: bytes | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        """Pass nothing on, either way, from now until ``thaw``; close nothing."""
        self._flowing.clear()

    def freeze_after(self, marker: bytes) -> None:
        """Pass on the next client bytes holding ``marker`` (a ``COMMIT``), then freeze: the server gets the
        statement, the client never gets its answer."""
        self._freeze_after = marker

    def thaw(self) -> None:
        self._freeze_after = None
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        for sock in [self._listener, *self._sockets]:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._closed.is_set():
                self._flowing.wait()
                ready, _, _ = select.select(list(peers), [], [], 0.05)
                if not self._flowing.is_set():
                    continue  # frozen while waiting: leave the bytes where they are
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
                    if sock is a and self._freeze_after is not None and self._freeze_after in data:
                        self._freeze_after = None
                        self._flowing.clear()
                        break  # the answer, if it is already here, stays unread
        except OSError:
            pass
        finally:
            a.close()
            b.close()
