"""The admin edge over fakes: a store that is down gives a clear page, never a traceback."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from ipaddress import ip_network

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from stockgate.domain.errors import StoreUnavailable
from stockgate.entrypoints.admin.routes import admin_routers
from stockgate.entrypoints.http.client_address import ClientAddresses
from stockgate.entrypoints.http.problems import HANDLERS
from stockgate.entrypoints.http.state import ApiState
from stockgate.services.admins import create_admin
from stockgate.services.ports import AdminSession, ProductActivity
from tests.fakes import FakeAdminSessions, FakeAdminViews
from tests.unit.conftest import World

CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


class DownSessions(FakeAdminSessions):
    async def get(self, session_id: str) -> AdminSession | None:
        raise StoreUnavailable("redis")


def app_for(world: World) -> Litestar:
    app = Litestar(route_handlers=admin_routers(), exception_handlers=HANDLERS)
    app.state.api = ApiState(container=world.container, addresses=ClientAddresses(()))
    return app


@pytest.fixture
async def down_client(world: World) -> AsyncIterator[AsyncTestClient[Litestar]]:
    world.container.admin_sessions = DownSessions()
    world.container.auth_deps = type(world.container.auth_deps)(
        users=world.container.admin_users,
        sessions=world.container.admin_sessions,
        throttle=world.container.login_throttle,
        audit=world.container.audit,
        clock=world.container.clock,
        policy=world.container.auth_deps.policy,
    )
    async with AsyncTestClient(app_for(world)) as client:
        yield client


async def test_redis_down_shows_a_clear_page_not_a_traceback(
    down_client: AsyncTestClient[Litestar],
) -> None:
    down_client.cookies.set("sg_admin_session", "some-session", path="/admin")
    page = await down_client.get("/admin/products", headers={"Accept": "text/html"})
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "not answering" in page.text and "Traceback" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    api = await down_client.get("/admin/products", headers={"Accept": "application/json"})
    assert api.status_code == 503 and api.json()["code"] == "unavailable"


async def test_login_page_with_redis_down_is_a_clear_page(
    down_client: AsyncTestClient[Litestar],
) -> None:
    down_client.cookies.set("sg_admin_session", "some-session", path="/admin")
    page = await down_client.get("/admin/login")
    assert page.status_code == 503 and "not answering" in page.text


async def test_static_files_carry_the_security_headers(world: World) -> None:
    async with AsyncTestClient(app_for(world)) as client:
        script = await client.get("/admin/static/admin.js")
        assert script.status_code == 200 and "data-poll" in script.text
        assert script.headers["x-content-type-options"] == "nosniff"


class DownViews(FakeAdminViews):
    async def activity(self, *, since: datetime) -> list[ProductActivity]:
        raise StoreUnavailable("postgres")


async def test_postgres_down_for_a_logged_in_admin_is_a_clear_page(world: World) -> None:
    now = world.clock.now().timestamp()
    session = AdminSession("live-session", 1, "ops", "csrf-token", now, now)
    await world.container.admin_sessions.add(session, 600)
    world.container.admin_views = DownViews(world.db)
    async with AsyncTestClient(app_for(world)) as client:
        client.cookies.set("sg_admin_session", session.id, path="/admin")
        page = await client.get("/admin")
        assert page.status_code == 503
        assert "not answering" in page.text and "postgres" in page.text
        live = await client.get("/admin/overview/live", headers={"Accept": "application/json"})
        assert live.status_code == 503 and live.json()["code"] == "unavailable"


async def test_login_cookie_is_secure_behind_a_trusted_tls_proxy_only(world: World) -> None:
    await create_admin("ops", "correct horse battery", users=world.container.admin_users)
    for trusted, secure in (((), False), ((ip_network("127.0.0.0/8"),), True)):
        app = app_for(world)
        app.state.api.addresses = ClientAddresses(trusted)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))  # type: ignore[arg-type]  # Litestar narrows ASGI types
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
            page = await client.get("/admin/login")
            token = CSRF.search(page.text)
            assert token
            answer = await client.post(
                "/admin/login",
                data={"username": "ops", "password": "correct horse battery", "_csrf": token[1]},
                headers={"X-Forwarded-Proto": "https"},
                follow_redirects=False,
            )
            assert answer.status_code == 303
            assert ("Secure" in answer.headers["set-cookie"]) is secure
