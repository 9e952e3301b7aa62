"""A TCP proxy for tests that can go silent: the connections it carries stay open but nothing gets through.

That is what a network partition, or a failover behind the same address, looks like
to a client that is only reading: no error, no data. New connections made after
``silence`` are carried normally, as they would be once the network is back.
"""
from __future__ import annotations

import socket
import threading

from tests.support.services import free_port


class SilencingProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._generation = 0  # connections accepted before the last silence() carry nothing
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def silence(self) -> None:
        with self._lock:
            self._generation += 1

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                generation = self._generation
                self._sockets += [client, upstream]
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
