"""Fixtures for the browser tests: the real app in its own process, Debian's Chromium driven by Playwright,
and people to act as.

The server is ``tests/browser/server.py`` on a free port against a fresh, migrated SQLite file; the tests
reach it only as a browser and an API client would. What no page can do (make an admin, change the
books while the server is down) goes through the services, in this process, on the same file.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import jwt
import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support import databases
from tests.support.services import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(ROOT, "tests", "browser", "server.py")
SCREENSHOTS = os.path.join(ROOT, "docs", "screenshots")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "password123"
JWT_SECRET = "browser-test-jwt-secret-0123456789"

_numbers = itertools.count(1)


class Server:
    """The app in a subprocess; ``restart`` kills it (SIGKILL, no goodbye to the sockets) and starts it again."""

    def __init__(self, database_path: str, log_path: str):
        self.database_path = database_path
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_uri(self) -> str:
        return f"sqlite:///{self.database_path}"

    def start(self) -> Server:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env.update({
            "PYTHONPATH": ROOT, "PORT": str(self.port), "DATABASE_URL": self.database_uri, "BALANCE_ENV": "testing",
            "SECRET_KEY": "browser-test-secret-key-0123456789", "JWT_SECRET": JWT_SECRET,
            "LOGIN_RATE_LIMIT": "10000 per minute", "LOG_LEVEL": "WARNING",
        })
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, SERVER], env=env, cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"the server did not answer within 30s; see {self.log_path}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.kill()
        self.start()


@dataclass
class Person:
    id: int
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


class Site:
    """The running site as its people use it: accounts over the API, pages through the log-in form."""

    def __init__(self, server: Server, browser: Browser, app):
        self.server = server
        self.browser = browser
        self.app = app
        self.contexts: list[BrowserContext] = []

    def api(self, method: str, path: str, person: Person | None = None, **kw) -> requests.Response:
        headers = dict(person.headers) if person else {}
        headers.update(kw.pop("headers", {}))
        return requests.request(method, self.server.url + path, headers=headers, timeout=10, **kw)

    def _login_api(self, email: str, password: str) -> Person:
        reply = self.api("POST", "/auth/login", json={"email": email, "password": password})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        return Person(body["user"]["id"], email, password, body["access_token"])

    def user(self, name: str = "user", email: str | None = None, full_name: str | None = None) -> Person:
        email = email or f"{name}{next(_numbers)}@example.com"
        reply = self.api("POST", "/auth/register", json={"email": email, "password": PASSWORD, "name": full_name})
        assert reply.status_code == 201, reply.text
        return self._login_api(email, PASSWORD)

    def admin(self, name: str = "admin", email: str | None = None) -> Person:
        from balance.services import accounts

        email = email or f"{name}{next(_numbers)}@example.com"
        with self.app.app_context():
            accounts.make_admin(email, "admin-password-1")
        return self._login_api(email, "admin-password-1")

    def request_topup(self, person: Person, amount, description: str | None = None) -> str:
        reply = self.api("POST", "/transactions/topup", person, json={"amount": amount, "description": description})
        assert reply.status_code == 201, reply.text
        return reply.json()["id"]

    def decide(self, admin: Person, transaction_id: str, approve: bool = True) -> requests.Response:
        return self.api("PATCH", f"/transactions/topup/{transaction_id}/process", admin,
                        json={"status": "success" if approve else "failed"})

    def fund(self, person: Person, admin: Person, amount) -> None:
        assert self.decide(admin, self.request_topup(person, amount)).status_code == 200

    @staticmethod
    def ended_login(person: Person, csrf: str) -> str:
        """The login cookie of a page served an hour ago (its forms carry ``csrf``), now expired."""
        now = int(time.time())
        claims = {"sub": str(person.id), "type": "access", "fresh": False, "jti": str(uuid.uuid4()), "csrf": csrf,
                  "iat": now - 3605, "nbf": now - 3605, "exp": now - 5}
        return jwt.encode(claims, JWT_SECRET, algorithm="HS256")

    def balance(self, person: Person):
        return self.api("GET", "/balance", person).json()["balance"]

    def context(self, **options) -> BrowserContext:
        context = self.browser.new_context(base_url=self.server.url, viewport=options.pop("viewport", None)
                                           or {"width": 1280, "height": 900}, **options)
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        return context

    def log_in(self, context: BrowserContext, person: Person, path: str = "/") -> Page:
        """A new tab logged in through the form (the cookie is then shared by the context's other tabs)."""
        page = context.new_page()
        page.goto("/login?next=" + path)
        page.get_by_label("Email").fill(person.email)
        page.get_by_label("Password").fill(person.password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"**{path}")
        return page

    def open(self, context: BrowserContext, path: str = "/") -> Page:
        """Another tab of an already logged-in context, waiting until its socket is live."""
        page = context.new_page()
        page.goto(path)
        return page

    def page_for(self, person: Person, path: str = "/", **options) -> Page:
        return self.log_in(self.context(**options), person, path)

    @staticmethod
    def wait_until(page: Page, condition, what: str, timeout: float = 10) -> None:
        """Wait for something only this process sees (a route handler has run), letting Playwright work
        meanwhile: its handlers run while the test waits on the page."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting until {what}")
            page.wait_for_timeout(20)

    def close(self) -> None:
        """Leave every page as a person does (its unload handlers say goodbye to the server), then close."""
        for context in self.contexts:
            for page in context.pages:
                try:
                    page.goto("about:blank", timeout=2_000)
                except Exception:  # a page the test already broke or closed: closing the context is enough
                    pass
            context.close()


@pytest.fixture(scope="session")
def browser() -> Browser:
    expect.set_options(timeout=5_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _server(template: str, directory) -> Server:
    database = str(directory / "balance.sqlite3")
    databases.copy_sqlite(template, database)
    return Server(database, str(directory / "server.log"))


@pytest.fixture(scope="session")
def server(sqlite_template_path, tmp_path_factory) -> Server:
    """One server for the tests that do not restart it (each test makes its own people)."""
    running = _server(sqlite_template_path, tmp_path_factory.mktemp("browser-server")).start()
    yield running
    running.kill()


@pytest.fixture
def own_server(sqlite_template_path, tmp_path) -> Server:
    """A server this test may kill and restart."""
    running = _server(sqlite_template_path, tmp_path).start()
    yield running
    running.kill()


def _site(server: Server, browser: Browser):
    app = databases.make_app(server.database_uri)
    site = Site(server, browser, app)
    yield site
    site.close()
    with app.app_context():
        from balance.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def site(server, browser):
    yield from _site(server, browser)


@pytest.fixture
def own_site(own_server, browser):
    yield from _site(own_server, browser)


@pytest.fixture
def screenshots() -> str:
    """Where the README's screenshots go: test-artifacts/ on a normal run, docs/screenshots/ with
    UPDATE_SCREENSHOTS=1, so running the suite does not leave tracked files modified."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else os.path.join(ROOT, "test-artifacts")
    os.makedirs(folder, exist_ok=True)
    return folder
