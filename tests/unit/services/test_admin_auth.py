"""Admin login, sessions and CSRF over fakes: timeouts move with the fake clock."""

from __future__ import annotations

import pytest

from stockgate.domain.errors import CsrfRefused, InvalidCredentials, LoginThrottled
from stockgate.services.admin_auth import (
    AuthDeps,
    SessionPolicy,
    check_csrf,
    current_session,
    log_in,
    log_out,
)
from stockgate.services.admins import create_admin
from tests.fakes import (
    FakeAdminSessions,
    FakeAdminUsers,
    FakeAuditLog,
    FakeClock,
    FakeLoginThrottle,
)

PASSWORD = "correct horse battery"
IDLE, MAX = 600, 3600


@pytest.fixture(scope="module")
async def known_users() -> FakeAdminUsers:
    users = FakeAdminUsers()
    await create_admin("ops", PASSWORD, users=users)  # argon2: hashed once per module
    return users


@pytest.fixture
async def deps(known_users: FakeAdminUsers) -> AuthDeps:
    users = FakeAdminUsers()
    users.users = dict(known_users.users)
    return AuthDeps(
        users=users,
        sessions=FakeAdminSessions(),
        throttle=FakeLoginThrottle(max_failures=3),
        audit=FakeAuditLog(),
        clock=FakeClock(),
        policy=SessionPolicy(idle_seconds=IDLE, max_seconds=MAX),
    )


def clock_of(deps: AuthDeps) -> FakeClock:
    assert isinstance(deps.clock, FakeClock)
    return deps.clock


def audit_of(deps: AuthDeps) -> list[str]:
    assert isinstance(deps.audit, FakeAuditLog)
    return [entry.action for entry in deps.audit.entries]


async def test_each_login_gets_a_new_session_id_and_csrf_token(deps: AuthDeps) -> None:
    first = await log_in("ops", PASSWORD, "10.0.0.1", deps=deps)
    second = await log_in("ops", PASSWORD, "10.0.0.1", deps=deps)
    assert first.id != second.id and first.csrf_token != second.csrf_token
    assert await current_session(first.id, deps=deps) is not None
    assert audit_of(deps) == ["login", "login"]


async def test_session_ends_after_idle_timeout_but_activity_keeps_it(deps: AuthDeps) -> None:
    session = await log_in("ops", PASSWORD, "10.0.0.1", deps=deps)
    clock_of(deps).advance(IDLE - 1)
    assert await current_session(session.id, deps=deps) is not None  # activity restarts idle
    clock_of(deps).advance(IDLE - 1)
    assert await current_session(session.id, deps=deps) is not None
    clock_of(deps).advance(IDLE + 1)
    assert await current_session(session.id, deps=deps) is None
    assert await deps.sessions.get(session.id) is None  # removed, not just refused


async def test_session_ends_at_absolute_timeout_however_active(deps: AuthDeps) -> None:
    session = await log_in("ops", PASSWORD, "10.0.0.1", deps=deps)
    for _ in range(MAX // (IDLE // 2) + 2):
        clock_of(deps).advance(IDLE // 2)
        if await current_session(session.id, deps=deps) is None:
            break
    else:
        pytest.fail("the session outlived its absolute timeout")
    assert clock_of(deps).now().timestamp() - session.created_at > MAX - IDLE // 2


async def test_session_ttl_never_outlives_the_absolute_timeout(deps: AuthDeps) -> None:
    session = await log_in("ops", PASSWORD, "10.0.0.1", deps=deps)
    for _ in range(MAX // (IDLE // 2) - 1):
        clock_of(deps).advance(IDLE // 2)
        assert await current_session(session.id, deps=deps) is not None
    clock_of(deps).advance(IDLE // 2 - 100)
    assert await current_session(session.id, deps=deps) is not None
    assert isinstance(deps.sessions, FakeAdminSessions)
    assert deps.sessions.ttls[session.id] <= 100


async def test_failures_throttle_the_account_from_any_address(deps: AuthDeps) -> None:
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        with pytest.raises(InvalidCredentials):
            await log_in("ops", "wrong", address, deps=deps)
    with pytest.raises(LoginThrottled) as throttled:
        await log_in("OPS", PASSWORD, "10.0.0.9", deps=deps)  # names compare case-blind
    assert throttled.value.facts["retry_after"] > 0
    assert "too many failed logins" in throttled.value.detail
    assert audit_of(deps) == ["login.failed"] * 3 + ["login.throttled"]


async def test_failures_throttle_the_address_across_accounts(deps: AuthDeps) -> None:
    for name in ("alice", "bob", "carol"):
        with pytest.raises(InvalidCredentials):
            await log_in(name, "wrong", "10.0.0.7", deps=deps)
    with pytest.raises(LoginThrottled):
        await log_in("ops", PASSWORD, "10.0.0.7", deps=deps)
    assert (await log_in("ops", PASSWORD, "10.0.0.8", deps=deps)).username == "ops"


async def test_success_clears_the_account_count_only(deps: AuthDeps) -> None:
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await log_in("ops", "wrong", "10.0.0.1", deps=deps)
    await log_in("ops", PASSWORD, "10.0.0.1", deps=deps)
    with pytest.raises(InvalidCredentials):
        await log_in("ops", "wrong", "10.0.0.2", deps=deps)
    await log_in("ops", PASSWORD, "10.0.0.2", deps=deps)  # 1 failure since: not throttled
    assert isinstance(deps.throttle, FakeLoginThrottle)
    assert deps.throttle.failures["address:10.0.0.1"] == 2


async def test_logout_removes_the_session(deps: AuthDeps) -> None:
    session = await log_in("ops", PASSWORD, "10.0.0.1", deps=deps)
    await log_out(session, deps=deps)
    assert await current_session(session.id, deps=deps) is None
    assert audit_of(deps) == ["login", "logout"]


async def test_unknown_or_oversized_session_ids_name_no_session(deps: AuthDeps) -> None:
    assert await current_session(None, deps=deps) is None
    assert await current_session("", deps=deps) is None
    assert await current_session("x" * 10_000, deps=deps) is None


async def test_csrf_token_must_be_the_sessions_own(deps: AuthDeps) -> None:
    session = await log_in("ops", PASSWORD, "10.0.0.1", deps=deps)
    other = await log_in("ops", PASSWORD, "10.0.0.1", deps=deps)
    check_csrf(session, session.csrf_token)
    for token in (None, "", "forged", other.csrf_token):
        with pytest.raises(CsrfRefused):
            check_csrf(session, token)
