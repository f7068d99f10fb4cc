"""`stockgate admin create-user`: check the input, then store the admin with a hashed password."""

from __future__ import annotations

from stockgate.bootstrap import Container
from stockgate.config import Settings
from stockgate.entrypoints.cli.catalog import with_container
from stockgate.services import admins


async def create_user(settings: Settings, name: str, password: str) -> None:
    # Bad input is refused before any store is started or reached.
    admins.check_username(name)
    admins.check_password(password)

    async def work(c: Container) -> None:
        await admins.create_admin(name, password, users=c.admin_users)

    await with_container(settings, work)
