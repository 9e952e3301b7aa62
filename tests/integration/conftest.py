"""Integration tests call the services directly, inside an app context, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest


@pytest.fixture
def ctx(app):
    """The app, with an application context pushed for the test's duration."""
    with app.app_context():
        yield app
