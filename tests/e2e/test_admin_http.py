"""The admin dashboard over HTTP against a real `stockgate api`: login, sessions, CSRF,
throttling, every route guarded, and an audit row for every action."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.services.admins import create_admin
from tests.conftest import MakeProduct, clients
from tests.e2e.admin_client import csrf_of, log_in, page_csrf
from tests.e2e.api_process import running_api
from tests.e2e.conftest import env_for

PASSWORD = "correct horse battery"
MAX_FAILURES = 3
PROBLEM = "application/problem+json"

# Every admin route with a method; each must refuse an anonymous request.
ADMIN_ROUTES = [
    ("GET", "/admin"),
    ("GET", "/admin/overview/live"),
    ("GET", "/admin/products"),
    ("POST", "/admin/products"),
    ("POST", "/admin/products/1/restock"),
    ("POST", "/admin/products/1/terms"),
    ("GET", "/admin/orders"),
    ("GET", f"/admin/orders/{'0' * 8}-0000-0000-0000-{'0' * 12}"),
    ("POST", f"/admin/orders/{'0' * 8}-0000-0000-0000-{'0' * 12}/retry"),
    ("POST", f"/admin/orders/{'0' * 8}-0000-0000-0000-{'0' * 12}/cancel"),
    ("GET", "/admin/queues"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/reconcile"),
    ("POST", "/admin/reconcile"),
    ("GET", "/admin/webhooks"),
    ("GET", "/admin/webhooks/evt_1"),
    ("POST", "/admin/webhooks/evt_1/replay"),
    ("POST", "/admin/logout"),
]


@pytest.fixture(scope="module")
def admin_api(module_settings: Settings) -> Iterator[str]:
    env = env_for(
        module_settings,
        STOCKGATE_ADMIN_LOGIN_MAX_FAILURES=str(MAX_FAILURES),
        # Every test logs in from 127.0.0.1: the address limit is tested on its own elsewhere.
        STOCKGATE_ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS="1000",
    )
    with running_api(env) as url:
        yield url


@pytest.fixture
async def admin(module_container: Container) -> str:
    name = f"ops-{secrets.token_hex(4)}"
    await create_admin(name, PASSWORD, users=module_container.admin_users)
    return name


async def audit_rows(container: Container, actor: str) -> list[Any]:
    query = sa.text(
        "SELECT action, target, before, after FROM audit_log WHERE actor = :a ORDER BY id"
    )
    async with clients(container).engine.connect() as connection:
        return list((await connection.execute(query, {"a": actor})).all())


async def test_login_sets_a_hardened_cookie_and_opens_the_dashboard(
    admin_api: str, admin: str
) -> None:
    async with httpx.AsyncClient(base_url=admin_api) as client:
        response = await log_in(client, admin, PASSWORD)
        assert response.status_code == 303 and response.headers["location"] == "/admin"
        cookie = response.headers["set-cookie"]
        assert "sg_admin_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
        assert "Path=/admin" in cookie
        assert "Secure" not in cookie  # plain HTTP here; Secure when served over HTTPS
        page = await client.get("/admin")
        assert page.status_code == 200 and "Sale overview" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"


async def test_wrong_password_is_refused_with_a_message_and_no_session(
    admin_api: str, admin: str
) -> None:
    async with httpx.AsyncClient(base_url=admin_api) as client:
        response = await log_in(client, admin, "not the password")
        assert response.status_code == 401
        assert "wrong" in response.text
        assert "sg_admin_session" not in response.headers.get("set-cookie", "")
        assert (await client.get("/admin")).status_code == 303


async def test_repeated_failures_throttle_the_account_even_with_the_right_password(
    admin_api: str, admin: str, module_container: Container
) -> None:
    async with httpx.AsyncClient(base_url=admin_api) as client:
        for _ in range(MAX_FAILURES):
            assert (await log_in(client, admin, "guess")).status_code == 401
        throttled = await log_in(client, admin, PASSWORD)
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        assert "Too many failed logins" in throttled.text or "too many failed logins" in (
            throttled.text
        )
        assert (await client.get("/admin")).status_code == 303  # still not logged in
    actions = [row.action for row in await audit_rows(module_container, admin)]
    assert actions == ["login.failed"] * MAX_FAILURES + ["login.throttled"]


async def test_login_issues_a_new_session_id_so_a_planted_one_is_useless(
    admin_api: str, admin: str
) -> None:
    planted = "attacker-chosen-session-id"
    async with httpx.AsyncClient(base_url=admin_api) as client:
        client.cookies.set("sg_admin_session", planted, path="/admin")
        first = await log_in(client, admin, PASSWORD)
        issued = first.cookies["sg_admin_session"]
        assert issued != planted
        assert (await client.get("/admin")).status_code == 200
    async with httpx.AsyncClient(base_url=admin_api) as second:
        await log_in(second, admin, PASSWORD)
        assert second.cookies["sg_admin_session"] not in (issued, planted)
    async with httpx.AsyncClient(base_url=admin_api) as other:
        other.cookies.set("sg_admin_session", planted, path="/admin")
        assert (await other.get("/admin")).status_code == 303


async def test_logout_ends_the_session_on_the_server(admin_api: str, admin: str) -> None:
    async with httpx.AsyncClient(base_url=admin_api) as client:
        await log_in(client, admin, PASSWORD)
        cookie = client.cookies["sg_admin_session"]
        token = await page_csrf(client)
        assert (await client.post("/admin/logout", data={"_csrf": token})).status_code == 303
    async with httpx.AsyncClient(base_url=admin_api) as replay:
        replay.cookies.set("sg_admin_session", cookie, path="/admin")
        assert (await replay.get("/admin")).status_code == 303  # the old cookie is dead


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_every_admin_route_refuses_anonymous_users(
    admin_api: str, method: str, path: str
) -> None:
    async with httpx.AsyncClient(base_url=admin_api) as client:
        browser = await client.request(method, path, headers={"Accept": "text/html"})
        if method == "GET":
            assert browser.status_code == 303
            assert browser.headers["location"].startswith("/admin/login?next=")
        else:
            assert browser.status_code == 401
        api = await client.request(method, path, headers={"Accept": "application/json"})
        assert api.status_code == 401
        assert api.headers["content-type"].startswith(PROBLEM)
        assert api.json()["code"] == "admin_login_required"


async def test_state_change_without_a_valid_csrf_token_is_refused_and_changes_nothing(
    admin_api: str, admin: str, new_product: MakeProduct, module_container: Container
) -> None:
    product = await new_product(stock=10)
    async with httpx.AsyncClient(base_url=admin_api) as client:
        await log_in(client, admin, PASSWORD)
        for token in (None, "forged-token"):
            data = {"sku": product.sku, "quantity": "5"}
            if token:
                data["_csrf"] = token
            refused = await client.post(f"/admin/products/{product.id}/restock", data=data)
            assert refused.status_code == 403
            assert "CSRF" in refused.text
        header_forged = await client.post(
            f"/admin/products/{product.id}/restock",
            data={"sku": product.sku, "quantity": "5"},
            headers={"X-CSRF-Token": "forged", "Accept": "application/json"},
        )
        assert header_forged.status_code == 403
        assert header_forged.json()["code"] == "csrf_refused"
    async with module_container.uow_factory() as uow:
        after = await uow.products.get(product.id)
    assert after is not None and after.stock == 10
    assert [r.action for r in await audit_rows(module_container, admin)] == ["login"]


async def test_login_form_without_its_csrf_token_is_refused(admin_api: str, admin: str) -> None:
    async with httpx.AsyncClient(base_url=admin_api) as client:
        response = await client.post(
            "/admin/login", data={"username": admin, "password": PASSWORD, "_csrf": "x"}
        )
        assert response.status_code == 403
        assert "sg_admin_session" not in response.headers.get("set-cookie", "")


async def test_every_action_writes_an_audit_row_with_before_and_after(
    admin_api: str, admin: str, new_product: MakeProduct, module_container: Container
) -> None:
    product = await new_product(stock=10)
    sku = f"NEW-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=admin_api) as client:
        await log_in(client, admin, PASSWORD)
        token = await page_csrf(client)
        created = await client.post(
            "/admin/products",
            data={"_csrf": token, "sku": sku, "name": "Fresh", "price_cents": "500", "stock": "3"},
        )
        assert created.status_code == 303, created.text
        restocked = await client.post(
            f"/admin/products/{product.id}/restock",
            data={"_csrf": token, "sku": product.sku, "quantity": "5", "key": "k1"},
        )
        assert restocked.status_code == 303, restocked.text
        terms = await client.post(
            f"/admin/products/{product.id}/terms",
            data={"_csrf": token, "price_cents": "1999", "limit": "2"},
        )
        assert terms.status_code == 303, terms.text
        report = await client.post("/admin/reconcile", data={"_csrf": token})
        assert report.status_code == 200 and "reconcile-summary" in report.text
        assert "Fixed" not in report.text
        confirm = await client.post("/admin/reconcile", data={"_csrf": token, "fix": "yes"})
        assert confirm.status_code == 200 and "Are you sure?" in confirm.text
        fixed = await client.post(
            "/admin/reconcile", data={"_csrf": token, "fix": "yes", "confirm": "yes"}
        )
        assert fixed.status_code == 200 and "reconcile-summary" in fixed.text
        audit_page = await client.get("/admin/audit")
        assert "product.terms" in audit_page.text
        await client.post("/admin/logout", data={"_csrf": token})
    rows = await audit_rows(module_container, admin)
    actions = [row.action for row in rows]
    assert actions == [
        "login",
        "product.create",
        "product.restock",
        "product.terms",
        "reconcile.run",
        "reconcile.fix",
        "logout",
    ]
    by_action = {row.action: row for row in rows}
    assert by_action["product.create"].after["sku"] == sku
    assert by_action["product.restock"].before["stock"] == 10
    assert by_action["product.restock"].after["stock"] == 15
    assert by_action["product.terms"].before["price_cents"] == 1500
    assert by_action["product.terms"].after == {
        **by_action["product.terms"].before,
        "price_cents": 1999,
        "limit_per_customer": 2,
        "stock": 15,
    }
    # The new limit reached the gate: the next take of 3 units by one buyer is refused there.
    state = await module_container.gate.state(product.id)
    assert state.available == 15
    redis = clients(module_container).redis
    limit = await redis.hget(
        f"{module_container.settings.redis_prefix}:{{p:{product.id}}}:stock", "limit"
    )
    assert limit == b"2"


async def test_bad_form_input_re_renders_with_messages_and_changes_nothing(
    admin_api: str, admin: str, new_product: MakeProduct, module_container: Container
) -> None:
    product = await new_product(stock=10)
    async with httpx.AsyncClient(base_url=admin_api) as client:
        await log_in(client, admin, PASSWORD)
        token = await page_csrf(client)
        bad = [
            (f"/admin/products/{product.id}/restock", {"sku": product.sku, "quantity": "-3"}),
            (f"/admin/products/{product.id}/restock", {"sku": product.sku, "quantity": "lots"}),
            (f"/admin/products/{product.id}/terms", {"price_cents": "", "limit": "0"}),
            ("/admin/products", {"sku": "bad sku!", "name": "x", "price_cents": "1", "stock": "1"}),
            (
                "/admin/products",
                {"sku": product.sku, "name": "x", "price_cents": "1", "stock": "1"},
            ),
        ]
        for path, data in bad:
            response = await client.post(path, data={"_csrf": token, **data})
            assert response.status_code == 422, (path, data, response.text)
            assert 'class="error"' in response.text
            assert "<form" in response.text  # the form again, not an error page
        orders = await client.get("/admin/orders", params={"q": "not-a-uuid"})
        assert orders.status_code == 422 and "UUID" in orders.text
        missing = await client.get("/admin/webhooks/evt_missing")
        assert missing.status_code == 404 and "no webhook event" in missing.text
    async with module_container.uow_factory() as uow:
        after = await uow.products.get(product.id)
    assert after == product
    assert [r.action for r in await audit_rows(module_container, admin)] == ["login"]


async def test_open_redirect_after_login_is_refused(admin_api: str, admin: str) -> None:
    async with httpx.AsyncClient(base_url=admin_api) as client:
        page = await client.get("/admin/login", params={"next": "//evil.example/"})
        response = await client.post(
            "/admin/login",
            data={
                "username": admin,
                "password": PASSWORD,
                "_csrf": csrf_of(page.text),
                "next": "https://evil.example/",
            },
        )
        assert response.headers["location"] == "/admin"


async def test_the_same_restock_form_sent_twice_adds_stock_once(
    admin_api: str, admin: str, new_product: MakeProduct, module_container: Container
) -> None:
    product = await new_product(stock=10)
    async with httpx.AsyncClient(base_url=admin_api) as client:
        await log_in(client, admin, PASSWORD)
        page = await client.get("/admin/products")
        key = re.search(r'name="key" value="([^"]+)"', page.text)
        assert key, "the restock form carries a key"
        form = {"_csrf": csrf_of(page.text), "sku": product.sku, "quantity": "4", "key": key[1]}
        first = await client.post(f"/admin/products/{product.id}/restock", data=form)
        again = await client.post(f"/admin/products/{product.id}/restock", data=form)
        assert first.status_code == again.status_code == 303
        shown = await client.get(again.headers["location"])
        assert "applied before: nothing changed" in shown.text
    async with module_container.uow_factory() as uow:
        after = await uow.products.get(product.id)
    assert after is not None and after.stock == 14
    assert (await module_container.gate.available([product.id]))[product.id] == 14
    added = [
        row.after["added"]
        for row in await audit_rows(module_container, admin)
        if row.after and "added" in row.after
    ]
    assert added == [True, False]
