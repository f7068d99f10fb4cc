"""The PostgreSQL schema, defined once (SQLAlchemy Core); Alembic migrations create it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

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
        "status IN ('active', 'released', 'expired', 'converted', 'void')",
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
