"""End-to-end: the real server processes (gunicorn, Redis, PostgreSQL, python app.py) driven over HTTP and Socket.IO."""
