"""Admin login, sessions and CSRF: who is operating the dashboard, and are they still allowed.

A login that succeeds always starts a new session with a new id (no fixation) and a new CSRF
token bound to it. Failed logins are counted per account and per client address, shared by
every API node, and a login is refused while either is over its limit. Sessions end when idle
too long or too old, whatever the cookie says.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from stockgate.domain.errors import CsrfRefused, InvalidCredentials, LoginThrottled
from stockgate.services.admins import authenticate
from stockgate.services.ports import AdminSession, AdminSessions, AdminUsers, AuditLog, Clock
from stockgate.services.ports import LoginThrottle as Throttle

MAX_NAME_IN_KEY = 64  # a throttle key names at most this much of what was typed


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle_seconds: int
    max_seconds: int


@dataclass(frozen=True, slots=True)
class AuthDeps:
    users: AdminUsers
    sessions: AdminSessions
    throttle: Throttle
    audit: AuditLog
    clock: Clock
    policy: SessionPolicy


def throttle_keys(username: str, address: str) -> list[str]:
    # Names are compared case-insensitively here so "Admin" and "admin" share one count.
    return [f"account:{username.lower()[:MAX_NAME_IN_KEY]}", f"address:{address}"]


async def log_in(username: str, password: str, address: str, *, deps: AuthDeps) -> AdminSession:
    keys = throttle_keys(username, address)
    wait = await deps.throttle.retry_after(keys)
    if wait:
        await deps.audit.add(
            username[:MAX_NAME_IN_KEY], "login.throttled", None, after={"address": address}
        )
        raise LoginThrottled(wait)
    user = await authenticate(username, password, users=deps.users)
    if user is None:
        await deps.throttle.failed(keys)
        await deps.audit.add(
            username[:MAX_NAME_IN_KEY], "login.failed", None, after={"address": address}
        )
        raise InvalidCredentials()
    await deps.throttle.clear(keys[:1])  # the account's count; the address keeps its own
    now = deps.clock.now().timestamp()
    session = AdminSession(
        id=secrets.token_urlsafe(32),
        user_id=user.id,
        username=user.username,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen=now,
    )
    await deps.sessions.add(session, _ttl(session, now, deps.policy))
    await deps.audit.add(user.username, "login", None, after={"address": address})
    return session


async def current_session(session_id: str | None, *, deps: AuthDeps) -> AdminSession | None:
    """The live session named by the cookie, its idle clock restarted; None: log in again."""
    if not session_id or len(session_id) > 128:
        return None
    session = await deps.sessions.get(session_id)
    if session is None:
        return None
    now = deps.clock.now().timestamp()
    policy = deps.policy
    if (
        now - session.last_seen > policy.idle_seconds
        or now - session.created_at > policy.max_seconds
    ):
        await deps.sessions.remove(session_id)
        return None
    await deps.sessions.touch(session_id, now, _ttl(session, now, policy))
    return session


async def log_out(session: AdminSession, *, deps: AuthDeps) -> None:
    await deps.sessions.remove(session.id)
    await deps.audit.add(session.username, "logout", None)


def check_csrf(session: AdminSession, token: str | None) -> None:
    """Refuse a state-changing request whose token is not the session's (constant time)."""
    if not token or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
        raise CsrfRefused()


def _ttl(session: AdminSession, now: float, policy: SessionPolicy) -> int:
    """Redis forgets the session when either timeout would end it."""
    left = policy.max_seconds - (now - session.created_at)
    return max(1, int(min(policy.idle_seconds, left)))
