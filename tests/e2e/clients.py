"""What talks to a running server in these tests: the HTTP API as a user or admin would call it, and browser tabs.

``Api`` opens a new connection for every request (``Connection: close``), so the
requests of one test are spread over the workers instead of sticking to one.
``Tab`` is one open page: a python-socketio client on ``/balance`` that records
every event it receives, in order, and lets a test wait for a condition on them.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import engineio
import requests
import socketio

NAMESPACE = "/balance"
HTTP_TIMEOUT = 15
_emails = itertools.count(1)


@dataclass(frozen=True)
class Person:
    id: int
    email: str
    token: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    def __init__(self, base_url: str):
        self.base = base_url

    def call(self, method: str, path: str, person: Person | None = None, expect: int | tuple = 200, **kw) -> dict:
        headers = {"Connection": "close", **(person.headers if person else {})}
        reply = requests.request(method, self.base + path, headers=headers, timeout=HTTP_TIMEOUT, **kw)
        allowed = expect if isinstance(expect, tuple) else (expect,)
        assert reply.status_code in allowed, f"{method} {path}: {reply.status_code} {reply.text[:500]}"
        return reply.json()

    def login(self, email: str, password: str) -> Person:
        body = self.call("POST", "/auth/login", json={"email": email, "password": password})
        return Person(body["user"]["id"], email, body["access_token"])

    def new_user(self, prefix: str = "user", password: str = "password123") -> Person:
        email = f"{prefix}{next(_emails)}-{time.monotonic_ns()}@example.com"
        self.call("POST", "/auth/register", json={"email": email, "password": password}, expect=201)
        return self.login(email, password)

    def request_topup(self, user: Person, amount) -> dict:
        return self.call("POST", "/transactions/topup", user, expect=201, json={"amount": amount})

    def decide(self, admin: Person, transaction_id: str, approve: bool = True, notes: str | None = None) -> dict:
        body = {"status": "success" if approve else "failed"}
        if notes:
            body["admin_notes"] = notes
        return self.call("PATCH", f"/transactions/topup/{transaction_id}/process", admin, json=body)

    def top_up(self, user: Person, admin: Person, amount) -> dict:
        """Request a top-up as the user and approve it as the admin: one balance change."""
        return self.decide(admin, self.request_topup(user, amount)["id"])

    def pay(self, user: Person, amount, expect: int | tuple = 201) -> dict:
        return self.call("POST", "/transactions/payment", user, expect=expect, json={"amount": amount})

    def balance(self, user: Person) -> dict:
        return self.call("GET", "/balance", user)


class _InOrderEngineIO(engineio.Client):
    """Handles each incoming message before reading the next one.

    The stock client hands every message to a new thread, so two events sent back to
    back may be recorded in either order; these tests assert the order they were sent in.
    """

    def _trigger_event(self, event, *args, **kwargs):
        if event == "message":
            kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)


class _InOrderClient(socketio.Client):
    def _engineio_client_class(self):
        return _InOrderEngineIO


class Tab:
    """One open page of the seed's client: every event on ``/balance``, in the order the server sent them.

    ``early`` holds what arrived before the namespace's ``connect`` (there should be nothing).
    """

    def __init__(self, label: str = "tab", **client_options):
        self.label = label
        self.events: list[tuple[str, object]] = []
        self.refusal = None
        self._changed = threading.Condition()
        self.early: list | None = None
        self.client = _InOrderClient(reconnection=False, **client_options)
        self.client.on("*", self._record, namespace=NAMESPACE)
        self.client.on("connect", self._connected, namespace=NAMESPACE)
        self.client.on("connect_error", self._refused, namespace=NAMESPACE)

    def _record(self, event, data=None):
        with self._changed:
            self.events.append((event, data))
            self._changed.notify_all()

    def _connected(self):
        with self._changed:
            self.early = list(self.events)

    def _refused(self, data=None):
        self.refusal = data

    def connect(self, base_url: str, token: str | None = None, *, auth: dict | None = None, query: str = "",
                headers: dict | None = None, transports=("websocket",)) -> Tab:
        if auth is None:
            auth = {"token": token} if token is not None else None
        self.client.connect(base_url + query, auth=auth, headers=headers or {}, namespaces=[NAMESPACE],
                            transports=list(transports), wait_timeout=10)
        return self

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()
        self.client.shutdown()

    def call(self, event: str, data=None, timeout: float = 10):
        return self.client.call(event, data, namespace=NAMESPACE, timeout=timeout)

    # -- what it saw -------------------------------------------------------------------------

    def names(self) -> list[str]:
        with self._changed:
            return [name for name, _ in self.events]

    def of(self, name: str) -> list:
        with self._changed:
            return [data for event, data in self.events if event == name]

    def seqs(self) -> list[int]:
        return [data["seq"] for data in self.of("balance_updated")]

    def wait_until(self, condition, what: str, timeout: float = 10.0) -> None:
        """Wait for ``condition(self)`` to hold; fail naming ``what`` and showing what arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.label}: {what} not seen within {timeout}s; events: {self.events}")
                self._changed.wait(min(left, 0.2))

    def wait_for(self, name: str, count: int = 1, timeout: float = 10.0) -> None:
        self.wait_until(lambda t: t.names().count(name) >= count, f"{count} x {name}", timeout)

    def wait_for_seq(self, seq: int, timeout: float = 10.0) -> None:
        self.wait_until(lambda t: seq in t.seqs(), f"balance_updated seq {seq}", timeout)


def open_tabs(base_url: str, person: Person, count: int, label: str = "") -> list[Tab]:
    """``count`` tabs of one person, each greeted (``balance_initial`` received) before returning."""
    tabs = []
    try:
        for i in range(count):
            tabs.append(Tab(f"{label or person.email} tab {i}").connect(base_url, person.token))
        for tab in tabs:
            tab.wait_for("balance_initial")
            assert tab.early == [], f"{tab.label}: events before its connect: {tab.early}"
    except BaseException:
        close_all(tabs)
        raise
    return tabs


def close_all(tabs) -> None:
    for tab in tabs:
        tab.close()


def sockets_per_worker(base_url: str, workers: int = 3, tries: int = 200) -> dict[int, int]:
    """Ask ``GET /metrics`` on new connections until every worker has answered: worker pid -> its open sockets."""
    seen: dict[int, int] = {}
    for _ in range(tries):
        body = requests.get(base_url + "/metrics", headers={"Connection": "close"}, timeout=HTTP_TIMEOUT).json()
        seen[body["pid"]] = body["sockets"]
        if len(seen) == workers:
            break
    return seen


def open_spread_tabs(base_url: str, people: list[Person], per_person: int, workers: int = 3,
                     extra_rounds: int = 5) -> dict[int, list[Tab]]:
    """``per_person`` tabs each, plus one more each while some worker holds no socket at all (bounded)."""
    tabs: dict[int, list[Tab]] = {p.id: [] for p in people}
    try:
        for person in people:
            tabs[person.id] += open_tabs(base_url, person, per_person)
        for _ in range(extra_rounds):
            spread = sockets_per_worker(base_url, workers)
            if len(spread) == workers and all(spread.values()):
                return tabs
            for person in people:
                tabs[person.id] += open_tabs(base_url, person, 1)
        spread = sockets_per_worker(base_url, workers)
        assert len(spread) == workers and all(spread.values()), f"sockets did not land on all workers: {spread}"
        return tabs
    except BaseException:
        for group in tabs.values():
            close_all(group)
        raise
