"""Users: sign-up, sign-in, admins. A user's wallet is opened with the account."""
from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..database import write_transaction
from ..domain.errors import AuthenticationFailed, EmailTaken, NotFound
from ..extensions import db
from ..models import Account, User, utcnow


def _hasher() -> PasswordHasher:
    if current_app.config.get("FAST_PASSWORD_HASH"):
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


def normalise_email(email: str) -> str:
    return email.strip().lower()


def register(email: str, password: str, name: str | None = None, role: str = "user") -> User:
    """Create a user and their empty wallet in one transaction; ``EmailTaken`` if the address is in use."""
    email = normalise_email(email)
    password_hash = _hasher().hash(password)
    try:
        with write_transaction() as session:
            user = User(email=email, name=(name or None), password_hash=password_hash, role=role, created_at=utcnow())
            session.add(user)
            session.flush()
            session.add(Account(kind="wallet", user_id=user.id, currency=current_app.config["CURRENCY"], balance=0,
                                seq=0, updated_at=utcnow()))
    except IntegrityError:
        raise EmailTaken("an account with this email already exists", fields={"email": "already registered"}) from None
    return user


def authenticate(email: str, password: str) -> User:
    """The user with these credentials; the same error, after one password check either way, whether the email or the
    password is wrong, so neither the answer nor its time tells whether an account has that email."""
    email = normalise_email(email)
    hasher = _hasher()
    # an email no account can have (NUL, which PostgreSQL refuses, or other control characters) is not looked up
    user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none() \
        if len(email) <= 254 and email.isprintable() else None
    try:
        if user is None:
            hasher.verify(_equaliser_hash(hasher), password)  # the same work as a wrong password's check
        else:
            hasher.verify(user.password_hash, password)
            return user
    except (VerificationError, InvalidHashError):
        pass
    raise AuthenticationFailed("invalid email or password")


_EQUALISERS: dict[tuple, str] = {}


def _equaliser_hash(hasher: PasswordHasher) -> str:
    """A hash of no one's password with the hasher's parameters, made once per process (hashing it on every login
    with an unknown email made those answers take twice as long as a wrong password's)."""
    params = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len, hasher.salt_len)
    if params not in _EQUALISERS:
        _EQUALISERS[params] = hasher.hash(secrets.token_urlsafe(16))
    return _EQUALISERS[params]


def wallet_currency_other_than(currency: str) -> str | None:
    """The currency the wallets were opened in, if it is not ``currency``.

    Wallets share one currency (every start checks it before opening any), so the first
    and the newest wallet tell, each by the primary key: scanning every account for
    another currency read the whole table at each worker's start (77 ms a million)."""
    wallets = select(Account.currency).where(Account.kind == "wallet")
    try:
        found = [db.session.execute(wallets.order_by(order).limit(1)).scalar_one_or_none()
                 for order in (Account.id.asc(), Account.id.desc())]
    finally:
        db.session.rollback()
    return next((c for c in found if c is not None and c != currency), None)


def get(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def find_id(email: str) -> int | None:
    """The id of the account with this email, if there is one."""
    return db.session.execute(select(User.id).where(User.email == normalise_email(email))).scalar_one_or_none()


def make_admin(email: str, password: str | None) -> tuple[User, bool]:
    """Create an admin, or promote an existing user (and reset their password if one is given)."""
    email = normalise_email(email)
    existing = find_id(email)
    if existing is None:
        if not password:
            raise AuthenticationFailed("a new admin needs a password")
        return register(email, password, role="admin"), True
    password_hash = _hasher().hash(password) if password else None
    with write_transaction() as session:
        user = session.get(User, existing)
        user.role = "admin"
        if password_hash:
            user.password_hash = password_hash
    return user, False
