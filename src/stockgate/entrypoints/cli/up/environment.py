"""The environment `up` hands its children: the stores' URLs, the data dir, a strong key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from stockgate.config import Settings, StoreUrls, weak_secret_key

SECRET_KEY_FILE = "secret-key"  # in the data dir, 0600: a second `up` keeps buyers' tokens valid


def child_environment(settings: Settings, urls: StoreUrls) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "STOCKGATE_DATABASE_URL": urls.database_url,
            "STOCKGATE_REDIS_URL": urls.redis_url,
            "STOCKGATE_DATA_DIR": str(settings.data_dir.resolve()),
            "STOCKGATE_SECRET_KEY": secret_key(settings),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def secret_key(settings: Settings) -> str:
    """The configured secret key, or this machine's own random one (kept in the data dir).

    `api` and `worker` refuse the built-in development key, so `up` never hands it on.
    """
    key = settings.secret_key.get_secret_value()
    if weak_secret_key(key) is None:
        return key
    saved = settings.data_dir.resolve() / SECRET_KEY_FILE
    if saved.exists():
        key = saved.read_text().strip()
        if weak_secret_key(key) is None:
            return key
    key = secrets.token_urlsafe(48)
    saved.parent.mkdir(parents=True, exist_ok=True)
    save_private(saved, key)
    return key


def save_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (mode 0600, also when it existed)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # O_CREAT's mode applies only to a new file
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")
