"""An ``auth`` helper in the flaskr manner: register, log in, and build bearer headers."""
from __future__ import annotations

import itertools

from flask import Flask

from balance.services import accounts

_counter = itertools.count(1)


class AuthActions:
    def __init__(self, client):
        self.client = client

    @property
    def app(self) -> Flask:
        return self.client.application

    def register(self, email: str | None = None, password: str = "password123", name: str | None = None):
        email = email or f"user{next(_counter)}@example.com"
        return self.client.post("/auth/register", json={"email": email, "password": password, "name": name})

    def login(self, email: str, password: str = "password123"):
        return self.client.post("/auth/login", json={"email": email, "password": password})

    def headers_for(self, email: str, password: str = "password123") -> dict:
        token = self.login(email, password).get_json()["access_token"]
        return {"Authorization": f"Bearer {token}"}

    def new_user(self, email: str | None = None, password: str = "password123") -> tuple[int, dict]:
        """Register a user and return (user id, bearer headers)."""
        reply = self.register(email, password)
        assert reply.status_code == 201, reply.get_json()
        user = reply.get_json()["user"]
        return user["id"], self.headers_for(user["email"], password)

    def new_admin(self, email: str | None = None, password: str = "admin-password-1") -> tuple[int, dict]:
        email = email or f"admin{next(_counter)}@example.com"
        with self.app.app_context():
            user, _ = accounts.make_admin(email, password)
            user_id = user.id
        return user_id, self.headers_for(email, password)

    def fund(self, user_headers: dict, admin_headers: dict, amount) -> dict:
        """Request a top-up as the user and approve it as the admin; return the approved transaction."""
        pending = self.client.post("/transactions/topup", json={"amount": amount}, headers=user_headers)
        assert pending.status_code == 201, pending.get_json()
        done = self.client.patch(f"/transactions/topup/{pending.get_json()['id']}/process",
                                 json={"status": "success"}, headers=admin_headers)
        assert done.status_code == 200, done.get_json()
        return done.get_json()
