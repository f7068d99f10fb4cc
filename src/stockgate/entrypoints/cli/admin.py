"""`stockgate admin create-user`: check the input, then store the admin with a hashed password."""

from __future__ import annotations

from stockgate.adapters.embedded.stores import embedded_stores
from stockgate.adapters.postgres.admin_users import PostgresAdminUsers
from stockgate.adapters.postgres.database import create_engine
from stockgate.config import Settings
from stockgate.services import admins


async def create_user(settings: Settings, name: str, password: str) -> None:
    # Bad input is refused before any store is started or reached.
    admins.check_username(name)
    admins.check_password(password)
    with embedded_stores(settings) as urls:
        engine = create_engine(urls.database_url, pool_size=1)
        try:
            await admins.create_admin(name, password, users=PostgresAdminUsers(engine))
        finally:
            await engine.dispose()
