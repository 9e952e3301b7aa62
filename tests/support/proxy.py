"""TCP proxies for tests that can go silent: the connections they carry stay open but nothing gets through.

That is what a network partition, a frozen server, or a failover behind the same address
looks like to a client: no error, no data. Two ways to go silent:

- ``SilencingProxy.silence``: connections open at that moment carry nothing more (what is
  sent is swallowed); new connections are carried normally, as once the network is back.
- ``StallProxy.freeze``: every connection, old or new, passes nothing on until ``thaw``,
  which delivers what waited; ``freeze_after(marker)`` lets one statement through first
  (a ``COMMIT`` the server gets and whose answer the client never does).

Stopping a real server process (SIGSTOP) would do the same, but not to a shared one, nor
to one that is not ours (``TEST_DATABASE_URL``); a proxy works in front of any.
"""
from __future__ import annotations

import select
import socket
import threading


class _Proxy:
    """Accepts on a free local port and connects each client to the target; subclasses carry the bytes."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
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
            with self._lock:
                self._sockets += [client, upstream]
            self._carry(client, upstream)

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        raise NotImplementedError


class SilencingProxy(_Proxy):
    def __init__(self, target_host: str, target_port: int):
        self._generation = 0  # connections accepted before the last silence() carry nothing
        super().__init__(target_host, target_port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def silence(self) -> None:
        with self._lock:
            self._generation += 1

    def _carry(self, client, upstream) -> None:
        generation = self._generation
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink, generation), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, generation: int) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self._generation != generation:
                continue  # silenced: swallowed, and the connection left open
            try:
                sink.sendall(data)
            except OSError:
                return


class StallProxy(_Proxy):
    def __init__(self, target_host: str, target_port: int):
        self._flowing = threading.Event()
        self._flowing.set()
        self._freeze_after: bytes | None = None
        super().__init__(target_host, target_port)

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
        super().close()
        self._flowing.set()

    def _carry(self, client, upstream) -> None:
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
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
                    if sock is client and self._freeze_after is not None and self._freeze_after in data:
                        self._freeze_after = None
                        self._flowing.clear()
                        break  # the answer, if it is already here, stays unread
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()
