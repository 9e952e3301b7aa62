"""Which browser origins may open a socket: this site's own, plus ``FRONTEND_URL``'s.

python-engineio allows only the same origin by default, but a list of origins
*replaces* that default: with ``FRONTEND_URL`` set, the server's own pages were
refused ("not an accepted origin") and showed no live balance. So the list is
given as a check that also accepts the same origin, worked out as engine.io's
default does (the ``Host`` header, and the ``X-Forwarded-Proto``/``-Host`` a proxy
sets: browsers do not let a page set those on a socket, so they cannot be used
to pass another site off as this one).
"""
from __future__ import annotations


def same_origins(environ: dict) -> set[str]:
    """The origins this request's own site has, as engine.io's default reckons them."""
    host = environ.get("HTTP_HOST")
    if not host:
        return set()
    scheme = environ.get("wsgi.url_scheme", "http")
    found = {f"{scheme}://{host}"}
    if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
        forwarded_scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
        found.add(f"{forwarded_scheme}://{forwarded_host}")
    return found


def allowed(listed: list[str]):
    """``cors_allowed_origins`` for engine.io: None (its same-origin default) or a check that adds ``listed``."""
    if not listed:
        return None
    extra = frozenset(listed)

    def is_allowed(origin: str, environ: dict) -> bool:
        return origin in extra or origin in same_origins(environ)

    return is_allowed
