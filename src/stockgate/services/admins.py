"""Admin users: who may open the admin dashboard.

Names and passwords are checked here; passwords are kept only as argon2id hashes. Hashing
costs tens of milliseconds of CPU by design, so it runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from stockgate.domain.admin_user import AdminUser
from stockgate.domain.errors import InvalidInput
from stockgate.services.ports import AdminUsers

NAME = re.compile(r"[A-Za-z0-9._-]+")
MAX_NAME_LENGTH = 64
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte "password" is a cheap denial of service

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


def check_username(username: str) -> str:
    if not username:
        raise InvalidInput("the admin name must not be empty")
    if len(username) > MAX_NAME_LENGTH:
        raise InvalidInput(f"the admin name must be at most {MAX_NAME_LENGTH} characters")
    if NAME.fullmatch(username) is None:
        raise InvalidInput(
            f"the admin name {username!r} may contain only letters, digits, '.', '_' and '-'"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


async def create_admin(username: str, password: str, *, users: AdminUsers) -> AdminUser:
    check_username(username)
    check_password(password)
    password_hash = await asyncio.to_thread(_hasher.hash, password)
    return await users.add(username, password_hash)


async def authenticate(username: str, password: str, *, users: AdminUsers) -> AdminUser | None:
    """The user when the password matches, else None (unknown name or wrong password)."""
    found = await users.find(username) if NAME.fullmatch(username) else None
    if found is None:
        # Spend the same time as for a real user, so timing does not reveal which names exist.
        await asyncio.to_thread(_verify, _dummy_hash(), password)
        return None
    user, password_hash = found
    if not await asyncio.to_thread(_verify, password_hash, password):
        return None
    if _hasher.check_needs_rehash(password_hash):  # parameters were raised since it was set
        await users.set_password_hash(user.id, await asyncio.to_thread(_hasher.hash, password))
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a real password; only used to spend the same time")
