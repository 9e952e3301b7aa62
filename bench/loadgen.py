"""The benchmark's load generator: socket receivers and the HTTP driver, each an asyncio process.

    python bench/loadgen.py receive SPEC.json OUT.json   # hold sockets, record every event's arrival
    python bench/loadgen.py drive SPEC.json OUT.json     # make the changes at a steady rate, record send times

Every timestamp is ``time.monotonic()``, which on Linux is CLOCK_MONOTONIC: one clock for
every process on the host, so a send time taken by the driver and an arrival time taken
by a receiver can be subtracted. The orchestrator (``run.py``) merges the two files.

A receiver prints ``READY <connected> <failed>`` once its sockets are connected (and have
their ``balance_initial``), then waits for ``STOP`` on stdin, disconnects and writes its file.
"""
from __future__ import annotations

import asyncio
import gc
import json
import sys
import time

import aiohttp
import redis.asyncio as aioredis
import socketio

NAMESPACE = "/balance"


class GcPauses:
    """Records every garbage collection of this process that took over 2 ms: [start, seconds, generation].

    A load generator that stops for a collection delays what it measures; these times let
    the report tell such a pause from the server's.
    """

    def __init__(self):
        self.pauses: list = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._started = time.monotonic()
        elif time.monotonic() - self._started > 0.002:
            self.pauses.append([self._started, time.monotonic() - self._started, info.get("generation")])


def quiet_collector() -> None:
    """Once set up: move everything alive into the permanent generation and collect rarely.

    1,000 socket clients in one process make a full collection take a hundred
    milliseconds or more, during which no arrival is timed; browser tabs each have
    their own heap, so the harness should not add that pause to the server's latency.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


# -- receivers ----------------------------------------------------------------------------------

class Receiver:
    """Holds the sockets of some users and records (transactionId, socket, arrival time, seq)."""

    def __init__(self, spec: dict):
        self.url = spec["url"]
        self.users = spec["users"]  # [{"user_id", "token", "sockets": [global socket index, ...]}]
        self.connect_concurrency = spec.get("connect_concurrency", 50)
        self.received: list = []     # [transactionId, socket, t, seq] for balance_updated
        self.completed: list = []    # [transactionId, socket, t] for transaction_completed
        self.other: dict[str, int] = {}
        self.initial: dict[int, int] = {}  # socket -> seq of its balance_initial
        self.disconnects: list = []
        self.failed: list = []
        self.clients: list[socketio.AsyncClient] = []
        self.greeted = asyncio.Event()
        self.gc = GcPauses()

    def _client(self, sock: int) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        received, completed, other, initial = self.received, self.completed, self.other, self.initial

        @client.on("balance_updated", namespace=NAMESPACE)
        def balance_updated(data):
            received.append([data.get("transactionId"), sock, time.monotonic(), data.get("seq")])

        @client.on("transaction_completed", namespace=NAMESPACE)
        def transaction_completed(data):
            completed.append([data.get("transactionId"), sock, time.monotonic()])

        @client.on("balance_initial", namespace=NAMESPACE)
        def balance_initial(data):
            initial.setdefault(sock, data.get("seq"))
            if len(initial) >= self.expected_sockets:
                self.greeted.set()

        for name in ("transaction_failed", "balance_insufficient", "error"):
            @client.on(name, namespace=NAMESPACE)
            def count(data, name=name):
                other[name] = other.get(name, 0) + 1

        @client.on("disconnect", namespace=NAMESPACE)
        def disconnect(reason=None):
            self.disconnects.append([sock, time.monotonic(), str(reason)])

        return client

    async def _connect(self, gate: asyncio.Semaphore, sock: int, token: str) -> None:
        async with gate:
            client = self._client(sock)
            try:
                await client.connect(self.url, namespaces=[NAMESPACE], transports=["websocket"],
                                     auth={"token": token}, wait_timeout=30)
                self.clients.append(client)
            except Exception as exc:  # noqa: BLE001 - recorded and reported, the run goes on
                self.failed.append([sock, repr(exc)])

    async def run(self, out_path: str) -> None:
        self.expected_sockets = sum(len(u["sockets"]) for u in self.users)
        gate = asyncio.Semaphore(self.connect_concurrency)
        t0 = time.monotonic()
        await asyncio.gather(*(self._connect(gate, s, u["token"]) for u in self.users for s in u["sockets"]))
        try:
            await asyncio.wait_for(self.greeted.wait(), timeout=30)
        except asyncio.TimeoutError:
            pass
        connect_seconds = time.monotonic() - t0
        quiet_collector()
        print(f"READY {len(self.clients)} {len(self.failed)}", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "STOP":
                break
        stopped_at = time.monotonic()
        await asyncio.gather(*(c.disconnect() for c in self.clients), return_exceptions=True)
        with open(out_path, "w") as f:
            json.dump({"received": self.received, "completed": self.completed, "other": self.other,
                       "initial": self.initial, "failed": self.failed, "connect_seconds": connect_seconds,
                       "disconnects": [d for d in self.disconnects if d[1] < stopped_at],
                       "gc_pauses": self.gc.pauses}, f)
        print("DONE", flush=True)


# -- the driver ----------------------------------------------------------------------------------

class Driver:
    """Sends the planned requests open-loop: request i leaves at start + i/rate whatever the earlier ones do."""

    def __init__(self, spec: dict):
        self.url = spec["url"].rstrip("/")
        self.rate = spec["rate"]
        self.plan = spec["plan"]  # [{"kind": "approve"|"pay", "user_id", "token", "topup_id"?}]
        self.admin_token = spec["admin_token"]
        self.spec = spec
        self.redis_url = spec.get("redis_url")
        self.sent: list = []
        self.published: dict[str, float] = {}  # transactionId -> when its message appeared on balance:updates
        self.gc = GcPauses()

    async def _watch_bus(self, subscribed: asyncio.Event) -> None:
        """Timestamp each change's message on ``balance:updates``: splits the latency into write path and fan-out."""
        client = aioredis.from_url(self.redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe("balance:updates")
        subscribed.set()
        async for item in pubsub.listen():
            t = time.monotonic()
            try:
                for event in json.loads(item["data"]).get("events", ()):
                    if event.get("event") == "balance_updated":
                        self.published.setdefault(event["data"]["transactionId"], t)
            except (ValueError, AttributeError, KeyError, TypeError):
                pass

    async def _one(self, http: aiohttp.ClientSession, i: int, item: dict) -> None:
        if item["kind"] == "approve":
            method, path, token = "PATCH", f"/transactions/topup/{item['topup_id']}/process", self.admin_token
            body = {"status": "success", "admin_notes": "bench"}
        else:
            method, path, token = "POST", "/transactions/payment", item["token"]
            body = {"amount": item["amount"], "description": "bench payment"}
        headers = {"Authorization": f"Bearer {token}"}
        t0 = time.monotonic()
        try:
            async with http.request(method, self.url + path, json=body, headers=headers) as resp:
                data = await resp.json(content_type=None)
                t1 = time.monotonic()
                tx_id = data.get("id") if isinstance(data, dict) else None
                self.sent.append([i, item["kind"], item["user_id"], tx_id, resp.status, t0, t1,
                                  data.get("status") if isinstance(data, dict) else None])
        except Exception as exc:  # noqa: BLE001 - a failed request is a result, not a crash
            self.sent.append([i, item["kind"], item["user_id"], item.get("topup_id"), 0, t0, time.monotonic(),
                              repr(exc)])

    async def _warm_up(self, http: aiohttp.ClientSession) -> None:
        """Changes at the run's rate (approvals and payments in turn) for a user no socket listens to, not recorded.

        A server's first requests open its database connections, prepare statements
        and fill caches; a long-running server has done that already. This also leaves
        the driver's own HTTP connections open for the measured requests.
        """
        warm = self.spec.get("warmup") or {}
        topups = list(warm.get("topups") or ())
        count = int(self.rate * warm.get("seconds", 0))
        if not count or not warm.get("token"):
            return

        async def one(i: int) -> None:
            if i % 2 and topups:
                method, path, token = "PATCH", f"/transactions/topup/{topups.pop()}/process", self.admin_token
                body = {"status": "success", "admin_notes": "warm-up"}
            else:
                method, path, token = "POST", "/transactions/payment", warm["token"]
                body = {"amount": 1, "description": "warm-up"}
            async with http.request(method, self.url + path, json=body,
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
                await resp.read()

        start, tasks = time.monotonic(), []
        for i in range(count):
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, out_path: str) -> None:
        connector = aiohttp.TCPConnector(limit=200, force_close=False)
        timeout = aiohttp.ClientTimeout(total=30)
        watcher = None
        if self.redis_url:
            subscribed = asyncio.Event()
            watcher = asyncio.create_task(self._watch_bus(subscribed))
            await asyncio.wait_for(subscribed.wait(), 10)
        quiet_collector()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            await self._warm_up(http)
            start = time.monotonic() + 0.2
            tasks, lag = [], []
            for i, item in enumerate(self.plan):
                due = start + i / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                lag.append(time.monotonic() - due)
                tasks.append(asyncio.create_task(self._one(http, i, item)))
            finished_sending = time.monotonic()
            await asyncio.gather(*tasks)
            await asyncio.sleep(0.5)  # the last messages on the bus
        if watcher:
            watcher.cancel()
        lag.sort()
        with open(out_path, "w") as f:
            json.dump({"sent": self.sent, "published": self.published, "start": start, "finished_sending": finished_sending,
                       "finished": time.monotonic(),
                       "schedule_lag_p99": lag[int(len(lag) * 0.99)] if lag else None,
                       "schedule_lag_max": lag[-1] if lag else None, "gc_pauses": self.gc.pauses}, f)


def main(argv: list[str]) -> None:
    mode, spec_path, out_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    if mode == "receive":
        asyncio.run(Receiver(spec).run(out_path))
    elif mode == "drive":
        asyncio.run(Driver(spec).run(out_path))
    else:
        raise SystemExit(f"unknown mode {mode!r}: receive or drive")


if __name__ == "__main__":
    main(sys.argv[1:])
