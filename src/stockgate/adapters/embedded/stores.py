"""Where PostgreSQL and Redis are: the configured URLs, else the embedded servers.

Configured URLs win, each on its own. Otherwise the embedded PostgreSQL lives in
`<data_dir>/postgres` and the embedded Valkey in `<data_dir>/valkey`.

- `embedded_stores(settings)` is for commands run by a person (`up`, `migrate`, `products`,
  `reconcile`, `admin`): it attaches to servers already running on the data directory, or
  starts them, and on the way out stops them if no other process is using them. So a one-shot
  command leaves nothing behind, and one run while `stockgate up` runs leaves `up`'s servers
  alone. A freshly started embedded PostgreSQL is migrated to the newest schema.
- `resolve(settings)` only attaches; processes started by `up` (which passes URLs anyway)
  and `stockgate api` / `worker` run on their own use it.

Who uses the servers is counted by the kernel: every user holds a shared `flock` on the data
directory while it works; starting or stopping takes it exclusively. A process that dies
loses its lock with it, so a crash never leaves a count behind and no lock file is needed.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from stockgate.adapters.embedded import postgres, valkey
from stockgate.config import Settings, StoreUrls
from stockgate.domain.errors import EmbeddedStoreNotRunning, StoreUnavailable

LOCK_WAIT_SECONDS = 30.0


def postgres_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "postgres"


def valkey_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "valkey"


def resolve(settings: Settings) -> StoreUrls:
    """Configured URLs, else the embedded servers already running; never starts anything."""
    database_url = settings.database_url
    if database_url is None:
        running_postgres = postgres.find(postgres_dir(settings))
        if running_postgres is None:
            raise EmbeddedStoreNotRunning("PostgreSQL", "STOCKGATE_DATABASE_URL", _where(settings))
        database_url = running_postgres.url()
    redis_url = settings.redis_url
    if redis_url is None:
        running_valkey = valkey.find(valkey_dir(settings))
        if running_valkey is None:
            raise EmbeddedStoreNotRunning("Valkey", "STOCKGATE_REDIS_URL", _where(settings))
        redis_url = running_valkey.url
    return StoreUrls(database_url, redis_url)


def _where(settings: Settings) -> str:
    return str(settings.data_dir.resolve())


@contextmanager
def embedded_stores(settings: Settings) -> Iterator[StoreUrls]:
    """The stores to use for the duration of a command; see the module docstring."""
    if settings.database_url is not None and settings.redis_url is not None:
        yield StoreUrls(settings.database_url, settings.redis_url)
        return
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        urls = _attach_or_start(settings, lock)
        try:
            yield urls
        finally:
            _leave(settings, lock)
    finally:
        os.close(lock)  # also drops our flock


def _attach_or_start(settings: Settings, lock: int) -> StoreUrls:
    for _ in range(3):
        _flock(lock, fcntl.LOCK_SH, settings)
        if not _missing(settings):
            return resolve(settings)
        _flock(lock, fcntl.LOCK_EX, settings)  # waits for the others to leave; bounded
        try:
            if settings.database_url is None and postgres.find(postgres_dir(settings)) is None:
                started = postgres.start(postgres_dir(settings))
                # The embedded database is ours alone: bring its schema up to date, so any
                # command works on a fresh data directory without `stockgate migrate`.
                _migrate(started.url())
            if settings.redis_url is None and valkey.find(valkey_dir(settings)) is None:
                valkey.start(valkey_dir(settings))
        except BaseException:
            _stop_all(settings)  # we hold the lock exclusively: nobody else uses them
            fcntl.flock(lock, fcntl.LOCK_UN)
            raise
        # Downgrade and look again: were the downgrade not atomic, a last user leaving
        # at this instant could have stopped what we just started.
    _flock(lock, fcntl.LOCK_SH, settings)
    if _missing(settings):
        raise StoreUnavailable("embedded", "the embedded stores keep stopping; see their logs")
    return resolve(settings)


def _migrate(database_url: str) -> None:
    # Alembic runs its own event loop, and our caller may be inside one: use a thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate") as pool:
        from stockgate.adapters.postgres.migrate import upgrade  # Alembic only when needed

        pool.submit(upgrade, database_url).result()


def _missing(settings: Settings) -> bool:
    return (settings.database_url is None and postgres.find(postgres_dir(settings)) is None) or (
        settings.redis_url is None and valkey.find(valkey_dir(settings)) is None
    )


def _leave(settings: Settings, lock: int) -> None:
    """Stop the embedded servers if we are the last user; else leave them to the others."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # someone else still uses them (e.g. `stockgate up`)
    _stop_all(settings)


def _stop_all(settings: Settings) -> None:
    # Valkey first: its clients are gone already; PostgreSQL's fast shutdown disconnects any.
    if settings.redis_url is None:
        valkey.stop(valkey_dir(settings))
    if settings.database_url is None:
        postgres.stop(postgres_dir(settings))


def _flock(lock: int, operation: int, settings: Settings) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(lock, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise StoreUnavailable(
                    "embedded",
                    f"another stockgate process holds the embedded stores in "
                    f"{settings.data_dir.resolve()} and they are not running; stop it first",
                ) from None
            time.sleep(0.05)
