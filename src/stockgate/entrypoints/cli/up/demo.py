"""`up --demo`: a small catalog and an admin login, added once (a second run keeps them)."""

from __future__ import annotations

import asyncio
import secrets

from stockgate.bootstrap import bootstrap
from stockgate.config import Settings, StoreUrls
from stockgate.domain.errors import DuplicateSku
from stockgate.domain.product import NewProduct
from stockgate.entrypoints.cli.up.environment import save_private
from stockgate.entrypoints.cli.up.terminal import say
from stockgate.services import admins, catalog
from stockgate.services.ports import AdminUsers

DEMO_ADMIN = "admin"
DEMO_ADMIN_FILE = "demo-admin.txt"  # in the data dir, 0600: lets a second `up --demo` show it
DEMO_CATALOG = (
    NewProduct(
        sku="DROP-SNEAKER-42",
        name="Limited sneaker, size 42",
        price_cents=18_000,
        stock=50,
        limit_per_customer=1,
    ),
    NewProduct(
        sku="TICKET-GA",
        name="Concert ticket, general admission",
        price_cents=6_500,
        stock=500,
        limit_per_customer=4,
    ),
    NewProduct(sku="VINYL-FIRST-PRESS", name="Vinyl, first pressing", price_cents=3_900, stock=200),
    NewProduct(
        sku="CONSOLE-BUNDLE",
        name="Console bundle",
        price_cents=54_900,
        stock=10,
        limit_per_customer=1,
    ),
)


def add_demo_data(settings: Settings, urls: StoreUrls) -> None:
    asyncio.run(_add_demo_data(settings, urls))


async def _add_demo_data(settings: Settings, urls: StoreUrls) -> None:
    container = await bootstrap(settings, urls)
    try:
        added = 0
        for new in DEMO_CATALOG:
            try:
                await catalog.add_product(
                    new, uow_factory=container.uow_factory, gate=container.gate
                )
                added += 1
            except DuplicateSku:
                pass  # a second `up --demo` keeps what the first added
        say(f"demo catalog: {added} product(s) added, {len(DEMO_CATALOG) - added} already there")
        await _demo_admin(settings, container.admin_users)
    finally:
        await container.close()


async def _demo_admin(settings: Settings, users: AdminUsers) -> None:
    saved = settings.data_dir.resolve() / DEMO_ADMIN_FILE
    if await users.find(DEMO_ADMIN) is None:
        password = secrets.token_urlsafe(12)
        await admins.create_admin(DEMO_ADMIN, password, users=users)
        save_private(saved, password)
        say(f"demo admin login: {DEMO_ADMIN} / {password}")
    elif saved.exists():
        say(f"demo admin login: {DEMO_ADMIN} / {saved.read_text().strip()}")
    else:
        say(f"admin user {DEMO_ADMIN!r} exists already; its password was not set by --demo")
