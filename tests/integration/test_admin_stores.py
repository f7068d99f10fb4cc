"""Admin sessions, login throttling and the audit log on real Redis and PostgreSQL: what one
API node writes, another sees (two containers on the same stores)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from stockgate.bootstrap import Container, bootstrap
from stockgate.config import Settings, StoreUrls
from stockgate.domain.errors import InvalidCredentials, LoginThrottled
from stockgate.services.admin_auth import current_session, log_in, log_out
from stockgate.services.admins import create_admin
from tests.conftest import clients

PASSWORD = "correct horse battery"


@pytest.fixture
async def two_nodes(
    settings: Settings, store_urls: StoreUrls
) -> AsyncIterator[tuple[Container, Container]]:
    tuned = settings.model_copy(
        update={"admin_login_max_failures": 2, "admin_login_max_failures_per_address": 3}
    )
    first = await bootstrap(tuned, store_urls)
    second = await bootstrap(tuned, store_urls)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_session_made_on_one_node_is_live_and_revocable_on_another(
    two_nodes: tuple[Container, Container],
) -> None:
    first, second = two_nodes
    await create_admin("ops", PASSWORD, users=first.admin_users)
    session = await log_in("ops", PASSWORD, "10.0.0.1", deps=first.auth_deps)
    seen = await current_session(session.id, deps=second.auth_deps)
    assert seen is not None and seen.csrf_token == session.csrf_token
    await log_out(session, deps=second.auth_deps)
    assert await current_session(session.id, deps=first.auth_deps) is None


async def test_redis_keeps_only_a_digest_of_the_session_id_with_a_ttl(
    two_nodes: tuple[Container, Container],
) -> None:
    first, _ = two_nodes
    await create_admin("ops", PASSWORD, users=first.admin_users)
    session = await log_in("ops", PASSWORD, "10.0.0.1", deps=first.auth_deps)
    redis = clients(first).redis
    prefix = first.settings.redis_prefix
    keys = [key.decode() async for key in redis.scan_iter(match=f"{prefix}:admin:session:*")]
    assert len(keys) == 1 and session.id not in keys[0]
    ttl = await redis.ttl(keys[0])
    assert 0 < ttl <= first.settings.admin_session_idle_seconds


async def test_failures_on_one_node_throttle_logins_on_another(
    two_nodes: tuple[Container, Container],
) -> None:
    first, second = two_nodes
    await create_admin("ops", PASSWORD, users=first.admin_users)
    for node in (first, second):
        with pytest.raises(InvalidCredentials):
            await log_in("ops", "wrong", f"10.0.0.{secrets.randbelow(200)}", deps=node.auth_deps)
    with pytest.raises(LoginThrottled) as throttled:
        await log_in("ops", PASSWORD, "10.9.9.9", deps=first.auth_deps)
    window = first.settings.admin_login_window_seconds
    assert 0 < throttled.value.facts["retry_after"] <= window


async def test_an_address_is_throttled_across_accounts(
    two_nodes: tuple[Container, Container],
) -> None:
    first, second = two_nodes
    await create_admin("ops", PASSWORD, users=first.admin_users)
    for name in ("alice", "bob", "carol"):
        with pytest.raises(InvalidCredentials):
            await log_in(name, "wrong", "10.0.0.66", deps=second.auth_deps)
    with pytest.raises(LoginThrottled):
        await log_in("ops", PASSWORD, "10.0.0.66", deps=first.auth_deps)
    assert (await log_in("ops", PASSWORD, "10.0.0.67", deps=first.auth_deps)).username == "ops"


async def test_audit_log_pages_newest_first(container: Container) -> None:
    for number in range(5):
        await container.audit.add("ops", "product.restock", f"SKU-{number}", after={"n": number})
    page = await container.audit.recent(limit=3)
    assert [entry.target for entry in page] == ["SKU-4", "SKU-3", "SKU-2"]
    older = await container.audit.recent(limit=3, before_id=page[-1].id)
    assert [entry.target for entry in older] == ["SKU-1", "SKU-0"]
    assert older[0].after == {"n": 1} and older[0].actor == "ops"
