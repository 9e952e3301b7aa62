"""Socket.IO handlers for the ``/balance`` namespace: authenticate once at connect, then talk to the gateway.

A socket authenticates with an access token from ``auth.token``, the ``token`` query
parameter or the login cookie (``Bearer `` tolerated); anything else is refused and
the client gets ``connect_error``. A page also says whose it is (``auth.user_id``): the
cookie it connects with may have become another person's since it was rendered, and
such a socket is refused rather than shown that person's balance. It joins its own user's room (and admins the
admins' room), never another's. Its greeting (``balance_initial``, after any missed
changes) is sent once the server has acknowledged the connect, never before it.
"""
from __future__ import annotations

import logging
import time

from flask import current_app, request
from flask_jwt_extended import decode_token
from flask_socketio import ConnectionRefusedError as SocketRefused
from flask_socketio import Namespace, join_room

from ..extensions import db
from ..models import User
from .gateway import ADMINS_ROOM, ASK_BURST, ASK_PER_SECOND, NAMESPACE, user_room

log = logging.getLogger("BalanceGateway")

_LIFECYCLE = frozenset({"connect", "disconnect"})  # the events python-socketio itself triggers on a namespace
CONNECT_ACK_WAIT = 5.0  # seconds a greeting waits for the server to acknowledge the connect
GREET_ATTEMPTS, GREET_RETRY = 4, 0.5  # a greeting whose read fails is tried again after 0.5, 1, 2 s, then given up


class Refused(SocketRefused):
    """A refused connect; its message reaches the client as ``connect_error`` data (``{message}``)."""


def _token(auth) -> str | None:
    candidates = [
        auth.get("token") if isinstance(auth, dict) else None,
        request.args.get("token"),
        request.cookies.get(current_app.config["JWT_ACCESS_COOKIE_NAME"]),
    ]
    for raw in candidates:
        if isinstance(raw, str) and raw.strip():
            raw = raw.strip()
            return raw[7:].strip() if raw.lower().startswith("bearer ") else raw
    return None


def authenticate(auth) -> tuple[User, float | None]:
    """The socket's user, and when its token expires (epoch seconds; None if it never does)."""
    token = _token(auth)
    if not token:
        raise Refused("unauthorized: no token")
    try:
        claims = decode_token(token)
    except Exception:  # expired, badly signed, malformed: all mean the same to the client
        raise Refused("unauthorized: invalid or expired token") from None
    if claims.get("type") != "access":
        raise Refused("unauthorized: not an access token")
    try:
        user = db.session.get(User, int(claims["sub"]))
    except (KeyError, TypeError, ValueError):
        user = None
    if user is None:
        raise Refused("unauthorized: unknown user")
    return user, claims.get("exp")


def since_seq(value) -> int | None:
    """``since_seq`` from the connect auth, the query string, or ``get_current_balance``'s argument."""
    if isinstance(value, dict):
        value = value.get("since_seq")
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)  # ASCII digits only (str.isdigit takes any script's), and no 5,000-digit strings
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("since_seq must be a whole number >= 0")
    return value


def _same_user(page_user, user_id: int) -> bool:
    """Whether the ``user_id`` a page sent (whose page it is) names the token's user; anything else does not."""
    return isinstance(page_user, int) and not isinstance(page_user, bool) and page_user == user_id


def _gateway():
    return current_app.extensions["balance.gateway"]


class BalanceNamespace(Namespace):
    def on_connect(self, auth=None):
        try:
            user, expires_at = authenticate(auth)
        except Refused:
            raise
        except Exception:  # the database, most likely: any other exception here leaves the connect unanswered
            log.exception("could not check a socket's login")
            raise Refused("unavailable: the login could not be checked just now; connect again") from None
        if isinstance(auth, dict) and "user_id" in auth and not _same_user(auth["user_id"], user.id):
            # a page of one account connecting with the cookie of another (logged in since, in another tab)
            raise Refused("another login: this page belongs to another account than the one logged in; reload it")
        try:
            since, problem = since_seq(auth if isinstance(auth, dict) and "since_seq" in auth
                                       else request.args.get("since_seq")), None
        except ValueError as exc:  # still connected, and greeted with the snapshot; told why nothing was replayed
            since, problem = None, {"message": f"{exc}: nothing replayed, here is the current balance"}
        gateway = _gateway()
        sid = request.sid
        if not gateway.has_room_for(user.id):  # checked and attached with no yield between: no race past it
            gateway.stats["refused_over_user_limit"] += 1
            raise Refused(f"too many connections: at most {gateway.max_per_user} per user on each server process;"
                          " close some tabs")
        gateway.attach(sid, user.id, user.is_admin, expires_at)
        join_room(user_room(user.id))
        if user.is_admin:
            join_room(ADMINS_ROOM)
        app = current_app._get_current_object()
        socketio = self.socketio

        def greet():
            # The server acknowledges the connect only after this handler returns (and the request's
            # teardown, which may wait on the database): greet after that, or the client gets
            # balance_initial before its 'connect' (socket.io-client then emits them in that order).
            manager, deadline = socketio.server.manager, time.monotonic() + CONNECT_ACK_WAIT
            while not manager.is_connected(sid, NAMESPACE) and time.monotonic() < deadline:
                if sid not in gateway.sockets:
                    return  # gone before it was acknowledged
                socketio.sleep(0.002)
            if problem and sid in gateway.sockets:
                gateway.emit_to(sid, "error", problem)
            for attempt in range(GREET_ATTEMPTS):
                if sid not in gateway.sockets:
                    return
                try:
                    with app.app_context():
                        gateway.greet(sid, since)
                    return
                except Exception:  # its read failed (a database restart): until it is greeted, its changes wait
                    log.exception("could not greet socket %s (attempt %d of %d)", sid, attempt + 1, GREET_ATTEMPTS)
                    if attempt + 1 < GREET_ATTEMPTS:
                        socketio.sleep(GREET_RETRY * 2**attempt)
            socketio.server.disconnect(sid, namespace=NAMESPACE)  # the client connects again, rather than wait

        socketio.start_background_task(greet)

    def on_disconnect(self, reason=None):
        # No database work here: engine.io may run this inside whichever greenlet noticed the
        # socket was gone, even an HTTP request's whose session is still in use.
        _gateway().detach(request.sid)

    def trigger_event(self, event, *args):
        """Events with no handler get the README's ``error`` (Flask-SocketIO would drop them without a word).

        So do events a client sends under a lifecycle name: python-socketio dispatches a client's
        ``emit('disconnect')`` to ``on_disconnect`` like the real thing, which left the socket
        connected but detached from the gateway, silently missing every update after. The real
        ``connect`` and ``disconnect`` run while the socket is pending (not yet, or no longer,
        connected); a client's event only ever arrives on a connected socket. (That holds with
        python-socketio's default ``always_connect=False``, which this app keeps: with it on, a
        socket is connected before its connect handler runs.)
        """
        if not isinstance(event, str) or not event:  # a raw packet may name its event with a number, or nothing
            return self.socketio._handle_event(self._unknown_event, event, self.namespace, *args)
        sent_by_client = event in _LIFECYCLE and args and self.socketio.server.manager.is_connected(args[0],
                                                                                                    self.namespace)
        if sent_by_client or not hasattr(self, "on_" + event):
            return self.socketio._handle_event(self._unknown_event, event, self.namespace, *args)
        return super().trigger_event(event, *args)

    def _unknown_event(self, *_):
        name = str(request.event["message"])[:100]
        payload = {"message": f"unknown event {name!r}: this namespace takes get_current_balance"}
        _gateway().emit_to(request.sid, "error", payload)
        return {"error": payload}

    def on_get_current_balance(self, arg=None, *more):
        gateway, sid = _gateway(), request.sid
        state = gateway.sockets.get(sid)
        if state is None:
            return None
        try:
            if not state.may_ask(time.monotonic()):
                raise ValueError(f"too many get_current_balance calls: at most {ASK_BURST} at once, "
                                 f"then {ASK_PER_SECOND:g} a second")
            if more:
                raise ValueError(f"get_current_balance takes at most one argument ({{since_seq}} or a number), "
                                 f"not {1 + len(more)}")
            since = since_seq(arg)
        except ValueError as exc:
            payload = {"message": str(exc)}
            gateway.emit_to(sid, "error", payload)
            return {"error": payload}
        return gateway.greet(sid, since)


EXPIRY_SWEEP = 5.0  # seconds between two looks for sockets whose token has expired


def close_expired_forever(socketio, gateway, interval: float = EXPIRY_SWEEP) -> None:
    """A socket lives no longer than the token it connected with: then the server closes it, and the client
    must connect again with a valid one (the pages do, with the login cookie; an ended login finds itself
    refused). So an expired login, a demoted admin or a deleted user stops receiving within a token's life.
    One sweep per worker, not a timer per socket (a sleeping greenlet each cost 8 KiB per socket).
    The same sweep lets go of sockets whose connection dropped while they were connecting."""
    while True:
        socketio.sleep(interval)
        for sid in gateway.expired(time.time()):
            log.info("socket %s: its token expired; closing it", sid)
            # said first, for clients that do not reconnect on a server's disconnect (socket.io-client does not)
            gateway.emit_to(sid, "error", {"message": "login expired: log in again, or connect with a new token"})
            socketio.server.disconnect(sid, namespace=NAMESPACE)
        for sid in gateway.orphaned(time.monotonic(), lambda sid: _has_connection(socketio, sid)):
            log.info("socket %s: its connection is gone; letting it go", sid)
            socketio.server.disconnect(sid, namespace=NAMESPACE)


def _has_connection(socketio, sid: str) -> bool:
    """Whether engine.io still has the connection under this socket (it drops it when the client goes)."""
    eio_sid = socketio.server.manager.eio_sid_from_sid(sid, NAMESPACE)
    return eio_sid is not None and eio_sid in socketio.server.eio.sockets


def register(socketio) -> None:
    if not any(getattr(h, "namespace", None) == NAMESPACE for h in socketio.namespace_handlers):
        socketio.on_namespace(BalanceNamespace(NAMESPACE))
