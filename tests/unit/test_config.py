"""Settings: defaults, the STOCKGATE_ environment, the .env file, and refused values."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from stockgate.config import (
    DEV_SECRET_KEY,
    MIN_SECRET_KEY_LENGTH,
    LogFormat,
    Settings,
    load_settings,
    weak_secret_key,
)
from stockgate.entrypoints.cli.up.environment import secret_key as up_secret_key


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


def test_built_in_or_short_secret_key_is_weak_with_one_line_saying_how_to_make_one() -> None:
    for key in (DEV_SECRET_KEY, "s3cret", "x" * (MIN_SECRET_KEY_LENGTH - 1)):
        message = weak_secret_key(key)
        assert message is not None and "\n" not in message
        assert message.startswith("STOCKGATE_SECRET_KEY ")
        assert "secrets.token_urlsafe(48)" in message
    assert "too short (6 characters" in str(weak_secret_key("s3cret"))


def test_secret_key_of_32_characters_or_more_is_accepted() -> None:
    assert weak_secret_key("x" * MIN_SECRET_KEY_LENGTH) is None
    assert weak_secret_key(secrets.token_urlsafe(48)) is None


def test_up_makes_a_random_secret_key_once_and_keeps_it_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = up_secret_key(settings)
    assert weak_secret_key(key) is None
    saved = tmp_path / "data" / "secret-key"
    assert saved.read_text().strip() == key
    assert saved.stat().st_mode & 0o777 == 0o600
    assert up_secret_key(settings) == key  # a second `up` keeps buyers' tokens valid


def test_up_hands_on_a_configured_secret_key_and_writes_nothing(tmp_path: Path) -> None:
    strong = secrets.token_urlsafe(48)
    settings = Settings(data_dir=tmp_path / "data", secret_key=strong)
    assert up_secret_key(settings) == strong
    assert not (tmp_path / "data").exists()


def test_a_redis_cluster_is_refused_with_what_to_do_until_it_is_supported() -> None:
    with pytest.raises(ValidationError, match="STOCKGATE_REDIS_URL at a single Redis"):
        Settings(redis_cluster=True)


def test_rate_limits_and_trusted_proxies_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKGATE_RATE_LIMIT_CUSTOMERS", "5/second;20/minute")
    monkeypatch.setenv("STOCKGATE_RATE_LIMIT_HOLDS_PER_ADDRESS", "off")
    monkeypatch.setenv("STOCKGATE_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")
    settings = Settings()
    assert settings.rate_limit_customers == "5/second;20/minute"
    assert [str(n) for n in settings.trusted_networks] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    assert Settings(trusted_proxies="").trusted_networks == ()
    for name, bad in (
        ("rate_limit_holds_per_customer", "lots"),
        ("rate_limit_customers", "20/fortnight"),
        ("trusted_proxies", "10.0.0.0/8,proxy.example"),
    ):
        with pytest.raises(ValidationError, match=name):
            load_settings(**{name: bad})
