"""The PostgreSQL schema, defined once (SQLAlchemy Core); Alembic migrations create it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


products = sa.Table(
    "products",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("sku", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("price_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False, server_default="usd"),
    # Every unit ever added. Updated only by restocks, never on the reservation path.
    sa.Column("stock", sa.BigInteger, nullable=False),
    sa.Column("limit_per_customer", sa.Integer, nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("stock >= 0", name="stock_not_negative"),
    sa.CheckConstraint("price_cents >= 0", name="price_not_negative"),
    sa.CheckConstraint(
        "limit_per_customer IS NULL OR limit_per_customer > 0", name="limit_positive"
    ),
)

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(
        "status IN ('active', 'released', 'expired', 'converted', 'returned', 'void')",
        name="status_known",
    ),
    # The expiry worker's queue: only active reservations, ordered by expiry.
    sa.Index("ix_reservations_due", "expires_at", postgresql_where=sa.text("status = 'active'")),
)

reservation_lines = sa.Table(
    "reservation_lines",
    metadata,
    sa.Column(
        "reservation_id",
        UUID(as_uuid=True),
        sa.ForeignKey("reservations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # No foreign key to products, here or in the ledger: its check locked the hot product's
    # row on every reservation batch. Products are never deleted (a trigger refuses it) and
    # this path writes only ids the gate loaded from PostgreSQL (decision 0007).
    sa.Column("product_id", sa.BigInteger, primary_key=True),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.CheckConstraint("quantity > 0", name="quantity_positive"),
    sa.Index("ix_reservation_lines_product", "product_id"),
)

stock_ledger = sa.Table(
    "stock_ledger",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("product_id", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    # Units moved (>= 0); what a kind moves from where to where: domain/ledger.py MOVES.
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("reservation_id", UUID(as_uuid=True), nullable=True),
    # The movement's outside key (a restock key, a Stripe refund id): at most once per kind.
    sa.Column("ref", sa.Text, nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("quantity >= 0", name="quantity_not_negative"),
    sa.Index("ix_stock_ledger_product", "product_id", "kind"),
    sa.Index(
        "uq_stock_ledger_ref",
        "product_id",
        "kind",
        "ref",
        unique=True,
        postgresql_where=sa.text("ref IS NOT NULL"),
    ),
)

admin_users = sa.Table(
    "admin_users",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("username", sa.Text, nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)


def _now(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=None if nullable else sa.func.now(),
    )


ORDER_STATUSES = (
    "'payment_pending', 'paid', 'fulfilled', 'fulfillment_failed', 'expired', 'canceled', "
    "'refunded'"
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    # One order per reservation: a second checkout of the same reservation finds this one.
    sa.Column("reservation_id", UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("payment_intent_id", sa.Text, nullable=True, unique=True),
    sa.Column("client_secret", sa.Text, nullable=True),
    sa.Column("flag", sa.Text, nullable=True),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Column("fulfillment_attempts", sa.Integer, nullable=False, server_default="0"),
    _now("created_at"),
    _now("updated_at"),
    _now("paid_at", nullable=True),
    _now("fulfilled_at", nullable=True),
    sa.CheckConstraint(f"status IN ({ORDER_STATUSES})", name="status_known"),
    sa.CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
    sa.Index("ix_orders_status", "status", "created_at"),
    sa.Index("ix_orders_customer", "customer_id"),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column(
        "order_id",
        UUID(as_uuid=True),
        sa.ForeignKey("orders.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("product_id", sa.BigInteger, primary_key=True),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price_cents", sa.BigInteger, nullable=False),
    sa.CheckConstraint("quantity > 0", name="quantity_positive"),
)

# The order's history for operators: status moves, payments, fulfillment attempts, refunds.
order_events = sa.Table(
    "order_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("order_id", UUID(as_uuid=True), nullable=False),
    _now("at"),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("detail", JSONB, nullable=False, server_default="{}"),
    sa.Index("ix_order_events_order", "order_id", "id"),
)

# The webhook inbox (I5): stored before the 2xx, applied once, replayable.
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # the provider's event id
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    _now("received_at"),
    _now("processed_at", nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),  # what applying it did, for the operator
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Index(
        "ix_webhook_events_unprocessed",
        "received_at",
        postgresql_where=sa.text("processed_at IS NULL"),
    ),
)

# Calls to the payment provider that must happen but must not block the caller (expiry
# cancels a PaymentIntent, a late payment is refunded): written in the caller's transaction,
# made by the maintenance worker, retried until done.
payment_outbox = sa.Table(
    "payment_outbox",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("order_id", UUID(as_uuid=True), nullable=False),
    sa.Column("payment_intent_id", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    _now("created_at"),
    _now("next_attempt_at"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    _now("done_at", nullable=True),
    sa.CheckConstraint("kind IN ('cancel_intent', 'refund')", name="kind_known"),
    sa.Index(
        "ix_payment_outbox_due", "next_attempt_at", postgresql_where=sa.text("done_at IS NULL")
    ),
)

# Every operator action: who, what, when, and the record before and after.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    _now("at"),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=True),
    sa.Column("before", JSONB, nullable=True),
    sa.Column("after", JSONB, nullable=True),
    sa.Index("ix_audit_log_at", "at"),
)
