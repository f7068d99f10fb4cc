"""Admin users against real PostgreSQL: create, authenticate, refuse bad input, and the CLI."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from stockgate.adapters.postgres.admin_users import PostgresAdminUsers
from stockgate.adapters.postgres.database import create_engine
from stockgate.adapters.postgres.tables import admin_users
from stockgate.domain.errors import Conflict, InvalidInput
from stockgate.services.admins import authenticate, create_admin
from tests.e2e.api_process import STOCKGATE


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    built = create_engine(database_url, pool_size=2)
    try:
        yield built
    finally:
        await built.dispose()


@pytest.fixture
def users(engine: AsyncEngine) -> PostgresAdminUsers:
    return PostgresAdminUsers(engine)


async def test_created_admin_authenticates_with_its_password_only(
    users: PostgresAdminUsers,
) -> None:
    created = await create_admin("ops.lead", "correct horse", users=users)
    assert created.username == "ops.lead"
    assert await authenticate("ops.lead", "correct horse", users=users) == created
    assert await authenticate("ops.lead", "wrong horse!", users=users) is None
    assert await authenticate("nobody", "correct horse", users=users) is None


async def test_password_is_stored_as_an_argon2_hash(
    users: PostgresAdminUsers, engine: AsyncEngine
) -> None:
    await create_admin("hashed", "s3cret-password", users=users)
    async with engine.connect() as connection:
        stored = (
            await connection.execute(
                sa.select(admin_users.c.password_hash).where(admin_users.c.username == "hashed")
            )
        ).scalar_one()
    assert stored.startswith("$argon2id$") and "s3cret-password" not in stored


async def test_second_admin_with_the_same_name_is_a_conflict(users: PostgresAdminUsers) -> None:
    await create_admin("twice", "password-1", users=users)
    with pytest.raises(Conflict, match="already exists"):
        await create_admin("twice", "password-2", users=users)


@pytest.mark.parametrize("name", ["", "x" * 65, "with space", "semi;colon", "ünïcode", "a/b"])
async def test_bad_admin_names_are_refused(users: PostgresAdminUsers, name: str) -> None:
    with pytest.raises(InvalidInput):
        await create_admin(name, "long enough password", users=users)


@pytest.mark.parametrize("password", ["", "short", "7 chars"])
async def test_short_passwords_are_refused(users: PostgresAdminUsers, password: str) -> None:
    with pytest.raises(InvalidInput, match="at least 8"):
        await create_admin("shorty", password, users=users)


def create_user_cli(
    env: dict[str, str], name: str, password: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STOCKGATE, "admin", "create-user", name, "--password-stdin"],
        input=password + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_creates_an_admin_and_refuses_a_duplicate_in_one_line(
    stockgate_env: dict[str, str],
) -> None:
    created = create_user_cli(stockgate_env, "cli-admin", "a fine password")
    assert created.returncode == 0, created.stderr
    assert "cli-admin" in created.stdout
    again = create_user_cli(stockgate_env, "cli-admin", "a fine password")
    assert again.returncode == 2
    assert len(again.stderr.strip().splitlines()) == 1 and "already exists" in again.stderr


@pytest.mark.parametrize(("name", "password"), [("bad name", "a fine password"), ("ok", "short")])
def test_cli_refuses_bad_input_with_exit_2(
    stockgate_env: dict[str, str], name: str, password: str
) -> None:
    result = create_user_cli(stockgate_env, name, password)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
