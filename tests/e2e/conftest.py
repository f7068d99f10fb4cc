"""End-to-end fixtures: a real `stockgate api` process on real stores.

Starting the API costs about two seconds, so one API (with its own cloned database and key
prefix) serves a whole test module; tests stay independent by using their own products and
customers.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from stockgate.bootstrap import Container, bootstrap
from stockgate.config import Settings, StoreUrls
from stockgate.domain.product import NewProduct, Product
from stockgate.services.catalog import add_product
from tests.conftest import (
    TEST_SECRET_KEY,
    MakeProduct,
    _execute,
    delete_keys,
    run_in_thread,
    with_database,
)
from tests.e2e.api_process import running_api


@pytest.fixture(scope="module")
def module_settings(
    admin_database_url: str, template_database: str, redis_server_url: str
) -> Iterator[Settings]:
    name = f"sg_m_{secrets.token_hex(6)}"
    run_in_thread(
        lambda: _execute(
            admin_database_url,
            f'CREATE DATABASE "{name}" TEMPLATE "{template_database}" STRATEGY FILE_COPY',
        )
    )
    prefix = "m" + secrets.token_hex(6)
    try:
        yield Settings(
            database_url=with_database(admin_database_url, name),
            redis_url=redis_server_url,
            redis_prefix=prefix,
            rate_limit_enabled=False,
            secret_key=TEST_SECRET_KEY,
        )
    finally:
        delete_keys(redis_server_url, prefix)
        run_in_thread(
            lambda: _execute(admin_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        STOCKGATE_DATABASE_URL=str(settings.database_url),
        STOCKGATE_REDIS_URL=str(settings.redis_url),
        STOCKGATE_REDIS_PREFIX=settings.redis_prefix,
        STOCKGATE_RATE_LIMIT_ENABLED=str(settings.rate_limit_enabled).lower(),
        STOCKGATE_SECRET_KEY=settings.secret_key.get_secret_value(),
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def api_url(module_settings: Settings) -> Iterator[str]:
    with running_api(env_for(module_settings)) as url:
        yield url


@pytest.fixture(scope="module")
async def module_container(module_settings: Settings) -> AsyncIterator[Container]:
    assert module_settings.database_url and module_settings.redis_url
    container = await bootstrap(
        module_settings, StoreUrls(module_settings.database_url, module_settings.redis_url)
    )
    try:
        yield container
    finally:
        await container.close()


@pytest.fixture
def new_product(module_container: Container) -> MakeProduct:
    async def make(
        stock: int = 100, limit: int | None = None, name: str = "E2E product"
    ) -> Product:
        new = NewProduct(
            sku=f"E2E-{secrets.token_hex(4)}",
            name=name,
            price_cents=1500,
            stock=stock,
            limit_per_customer=limit,
        )
        container = module_container
        return await add_product(new, uow_factory=container.uow_factory, gate=container.gate)

    return make
