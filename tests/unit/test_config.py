"""Settings: defaults, the STOCKGATE_ environment, the .env file, and refused values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from stockgate.config import LogFormat, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("STOCKGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env from the working directory


def test_defaults() -> None:
    settings = Settings()
    assert settings.database_url is None and settings.redis_url is None
    assert settings.http_host == "127.0.0.1"
    assert settings.http_port == 8000
    assert settings.hold_seconds == 600
    assert settings.rate_limit_enabled is True
    assert settings.redis_cluster is False
    assert settings.redis_prefix == "sg"
    assert settings.stripe_secret_key is None
    assert settings.log_format is LogFormat.AUTO


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKGATE_DATABASE_URL", "postgresql://u@db:5432/shop")
    monkeypatch.setenv("STOCKGATE_REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("STOCKGATE_HTTP_PORT", "9001")
    monkeypatch.setenv("STOCKGATE_HOLD_SECONDS", "60")
    monkeypatch.setenv("STOCKGATE_RATE_LIMIT_ENABLED", "false")
    monkeypatch.setenv("STOCKGATE_SECRET_KEY", "s3cret")
    monkeypatch.setenv("HTTP_PORT", "1")  # without the prefix: not ours
    settings = Settings()
    assert settings.database_url == "postgresql://u@db:5432/shop"
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.http_port == 9001
    assert settings.hold_seconds == 60
    assert settings.rate_limit_enabled is False
    assert settings.secret_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_dotenv_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("STOCKGATE_HTTP_PORT=8123\nSTOCKGATE_HOLD_SECONDS=90\n")
    monkeypatch.setenv("STOCKGATE_HOLD_SECONDS", "120")
    settings = Settings()
    assert settings.http_port == 8123
    assert settings.hold_seconds == 120


def test_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKGATE_HTTP_PORT", "9001")
    assert load_settings(http_port=9002).http_port == 9002


def test_empty_urls_mean_embedded() -> None:
    settings = Settings(database_url="", redis_url="")
    assert settings.database_url is None and settings.redis_url is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STOCKGATE_DATABASE_URL", "mysql://db/shop"),
        ("STOCKGATE_REDIS_URL", "http://cache"),
        ("STOCKGATE_HTTP_PORT", "0"),
        ("STOCKGATE_HTTP_PORT", "65536"),
        ("STOCKGATE_HTTP_PORT", "eighty"),
        ("STOCKGATE_HOLD_SECONDS", "0"),
        ("STOCKGATE_LOG_LEVEL", "verbose"),
        ("STOCKGATE_RATE_LIMIT_ENABLED", "maybe"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
