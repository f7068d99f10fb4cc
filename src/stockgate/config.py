"""Settings: the only module that reads the environment (prefix STOCKGATE_, plus a .env file)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

from limits import parse_many
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stockgate.domain.reservation import MAX_QUANTITY

# The built-in secret key: public (it is in this file), so tokens it signs can be forged.
# `stockgate up` replaces it with a random key of its own; `api` and `worker` refuse it.
DEV_SECRET_KEY = "dev-insecure-change-me"
MIN_SECRET_KEY_LENGTH = 32
MAKE_SECRET_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


@dataclass(frozen=True, slots=True)
class StoreUrls:
    """Where PostgreSQL and Redis are: the configured URLs, or the embedded servers'."""

    database_url: str
    redis_url: str


class LogFormat(StrEnum):
    AUTO = "auto"  # readable on a terminal, JSON otherwise
    JSON = "json"
    CONSOLE = "console"


class Settings(BaseSettings):
    """Every setting of stockgate; the README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(
        env_prefix="STOCKGATE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset: the embedded PostgreSQL is used."
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; unset: the embedded Valkey is used."
    )
    redis_cluster: bool = Field(
        default=False, description="True: the Redis URL names a node of a Redis Cluster."
    )
    redis_prefix: str = Field(
        default="sg", description="Prefix of every Redis key (lets several stacks share a Redis)."
    )
    data_dir: Path = Field(
        default=Path(".stockgate"),
        description="Where the embedded PostgreSQL and Valkey keep their data.",
    )
    http_host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    http_port: int = Field(default=8000, ge=1, le=65535, description="Port the API listens on.")
    http_workers: int = Field(default=1, ge=1, le=64, description="API worker processes.")
    worker_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve worker metrics on this port; unset: off."
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Larger request bodies are refused with 413."
    )
    hold_seconds: int = Field(
        default=600, ge=1, le=86_400, description="How long a reservation holds stock."
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEV_SECRET_KEY),
        description=(
            "Signs customer tokens; at least 32 characters, required by `api` and `worker` "
            "(`up` makes one)."
        ),
    )
    token_ttl_seconds: int = Field(
        default=7 * 86_400, ge=60, description="Lifetime of a customer token."
    )
    max_quantity: int = Field(
        default=100,
        ge=1,
        le=MAX_QUANTITY,
        description=f"Largest quantity of one line of a reservation (at most {MAX_QUANTITY}).",
    )
    reconcile_interval_seconds: float = Field(
        default=30.0, gt=0, description="How often the maintenance worker reconciles."
    )
    reconcile_grace_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Age after which a Redis hold with no PostgreSQL row is given back.",
    )
    # Gate safety (issue 18): rebuilding a product after Redis lost writes.
    gate_rebuild_settle_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="Wait before rebuilding a product whose Redis restarted or failed over, so "
        "holds still being written land first.",
    )
    expiry_poll_seconds: float = Field(
        default=0.2, gt=0, le=5, description="How often the expiry worker looks for due holds."
    )
    sold_out_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="Per-node sold-out cache lifetime (cleared early when stock returns); 0 off.",
    )
    group_commit_max_batch: int = Field(
        default=256, ge=1, description="Most reservations written in one transaction."
    )
    db_pool_size: int = Field(
        default=10,
        ge=1,
        description="PostgreSQL connections per process (up to twice this under load); API"
        " processes keep max(2, half of it) more open for the group-commit journal.",
    )
    stripe_secret_key: SecretStr | None = Field(
        default=None, description="Stripe secret key; unset: the local fake Stripe is used."
    )
    stripe_publishable_key: str | None = Field(default=None, description="Stripe publishable key.")
    stripe_webhook_secret: SecretStr | None = Field(
        default=None, description="Verifies Stripe webhook signatures."
    )
    stripe_api_base: str | None = Field(
        default=None, description="Stripe API base URL (the fake Stripe's URL in development)."
    )
    stripe_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=80,
        description="Timeout of one Stripe API request (connecting, sending, reading each).",
    )
    stripe_max_network_retries: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Retries of a Stripe request after a network error, timeout, 409 or 5xx.",
    )
    # Payments (checkout, webhooks, late payments, refunds; docs/operations.md).
    payment_hold_seconds: int = Field(
        default=900,
        ge=60,
        le=86_400,
        description="A reservation in checkout is held until at least this long after checkout"
        " (PostgreSQL only; at most hold_seconds + this after it was taken).",
    )
    payments_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the maintenance worker drains the payment outbox, settles stuck"
        " orders and applies webhook events left unprocessed.",
    )
    stuck_order_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Orders awaiting payment this long are settled by asking Stripe.",
    )
    inbox_sweep_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Webhook events unprocessed this long after arriving are applied by the"
        " maintenance worker.",
    )
    fake_stripe_port: int = Field(
        default=8420, ge=1, le=65535, description="Port of the local fake Stripe started by `up`."
    )
    merchant_webhook_url: str | None = Field(
        default=None, description="Receives signed order notifications."
    )
    merchant_webhook_secret: SecretStr | None = Field(
        default=None, description="Signs merchant notifications.", validate_default=True
    )
    smtp_url: str | None = Field(default=None, description="Optional SMTP server for email.")
    # --- fulfillment and workers (issue 20): the job queue, retries, notifications, schedules
    merchant_email: str | None = Field(
        default=None,
        description="Receives order emails when STOCKGATE_SMTP_URL is set.",
        validate_default=True,
    )
    smtp_from: str = Field(default="stockgate@localhost", description="Sender of order emails.")
    notify_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Timeout of one merchant webhook or email delivery."
    )
    fulfillment_attempts: int = Field(
        default=6,
        ge=1,
        le=50,
        description="Fulfillment attempts before an order becomes fulfillment_failed.",
    )
    retry_backoff_seconds: float = Field(
        default=2.0,
        gt=0,
        description="First retry delay of a job; doubles each attempt (half of it random).",
    )
    retry_backoff_max_seconds: float = Field(
        default=300.0, gt=0, description="Longest delay between two attempts of a job."
    )
    job_lock_seconds: float = Field(
        default=5.0,
        ge=1,
        le=600,
        description="A job's lock; a killed worker's job runs again within about this long.",
    )
    job_concurrency: int = Field(
        default=8, ge=1, le=256, description="Jobs one worker process runs at once per queue."
    )
    requeue_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often maintenance re-asks for paid, unfulfilled orders.",
    )
    requeue_after_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Age of a paid, unfulfilled order's payment before maintenance re-asks.",
    )
    queue_depth_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often maintenance reports queue depth."
    )
    purge_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often maintenance purges old finished jobs."
    )
    keep_failed_jobs_seconds: float = Field(
        default=7 * 86_400.0, gt=0, description="How long failed jobs are kept for operators."
    )
    # --- abuse: request limits shared by all API nodes, and who the client is (issue 18) ---
    rate_limit_enabled: bool = Field(
        default=True,
        description="Per-client limits on customer creation and holds (load tests turn it off).",
    )
    rate_limit_customers: str = Field(
        default="20/minute",
        description='Guest customers one client address may create ("20/minute"; several: '
        '"5/second;20/minute"; "off").',
    )
    rate_limit_holds_per_address: str = Field(
        default="600/minute", description="Reservation requests per client address."
    )
    rate_limit_holds_per_customer: str = Field(
        default="60/minute", description="Reservation requests per customer."
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses/CIDRs of proxies whose X-Forwarded-For is "
        "believed (rightmost untrusted hop); empty: the peer address is the client.",
    )
    # Admin dashboard: sessions and login throttling (decision 0036).
    admin_session_idle_seconds: int = Field(
        default=1800, ge=60, le=86_400, description="An admin session ends after this long idle."
    )
    admin_session_max_seconds: int = Field(
        default=12 * 3600,
        ge=60,
        le=30 * 86_400,
        description="An admin session ends this long after login, however active.",
    )
    admin_login_max_failures: int = Field(
        default=5, ge=1, description="Failed admin logins per account before it must wait."
    )
    admin_login_max_failures_per_address: int = Field(
        default=20, ge=1, description="Failed admin logins per client address before it must wait."
    )
    admin_login_window_seconds: int = Field(
        default=900, ge=1, description="How long failed admin logins are counted (and the wait)."
    )
    # Live stock (Socket.IO)
    live_stock_interval_seconds: float = Field(
        default=0.1,
        gt=0,
        le=5,
        description="Live stock: at most one `stock` update per product per this many seconds.",
    )
    live_stock_max_watch: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Live stock: most products one Socket.IO client may watch.",
    )
    # --- storefront (the buyer's page at /)
    storefront_vendor_dir: Path | None = Field(
        default=None,
        description="Where npm installed the page's front-end packages (htmx, socket.io"
        " client); unset: node_modules of the project checkout.",
    )
    stripe_js_url: str | None = Field(
        default=None,
        description="Stripe.js the page loads; unset: the fake Stripe's stand-in when"
        " STOCKGATE_STRIPE_API_BASE is set, else https://js.stripe.com/v3/.",
    )
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    log_format: LogFormat = Field(
        default=LogFormat.AUTO, description="auto (readable on a terminal), json or console."
    )

    @field_validator("database_url")
    @classmethod
    def _asyncpg_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("redis_cluster")
    @classmethod
    def _single_redis_for_now(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "a Redis Cluster is not supported by this version yet; point "
                "STOCKGATE_REDIS_URL at a single Redis (see docs/operations.md)"
            )
        return value

    # --- fulfillment: a half-configured notification would fulfill orders without telling anyone
    @field_validator("merchant_webhook_secret")
    @classmethod
    def _secret_with_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("merchant_webhook_url") and not (value and value.get_secret_value()):
            raise ValueError("is required when STOCKGATE_MERCHANT_WEBHOOK_URL is set")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("smtp://", "smtps://")):
            raise ValueError("must be an smtp:// or smtps:// URL")
        return value

    @field_validator("merchant_email")
    @classmethod
    def _email_with_smtp(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("smtp_url") and not value:
            raise ValueError("is required when STOCKGATE_SMTP_URL is set (who gets the email)")
        return value or None

    @field_validator(
        "rate_limit_customers", "rate_limit_holds_per_address", "rate_limit_holds_per_customer"
    )
    @classmethod
    def _limit_syntax(cls, value: str) -> str:
        if value.strip().lower() in ("", "off", "none"):
            return value
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError('must be like "20/minute", "5/second;100/minute", or "off"') from exc
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                try:
                    ip_network(part.strip(), strict=False)
                except ValueError as exc:
                    raise ValueError(f"{part.strip()!r} is not an address or CIDR") from exc
        return value

    @property
    def trusted_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(
            ip_network(part.strip(), strict=False)
            for part in self.trusted_proxies.split(",")
            if part.strip()
        )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return level


def weak_secret_key(key: str) -> str | None:
    """Why this secret key must not sign customer tokens, as one line naming the fix; None: fine."""
    if key == DEV_SECRET_KEY:
        problem = "STOCKGATE_SECRET_KEY is not set (the built-in development value is public)"
    elif len(key) < MIN_SECRET_KEY_LENGTH:
        problem = (
            f"STOCKGATE_SECRET_KEY is too short ({len(key)} characters, "
            f"at least {MIN_SECRET_KEY_LENGTH})"
        )
    else:
        return None
    return f"{problem}; set it to a random value, e.g. the output of: {MAKE_SECRET_KEY}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and .env; keyword overrides win (used by tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]  # pydantic validates the values
