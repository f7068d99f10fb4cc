"""reservation writes no longer lock the product row; products cannot be deleted

Revision ID: 0003
Revises: 0002

The foreign keys from reservation_lines.product_id and stock_ledger.product_id to products made
every group-commit batch take a KEY SHARE lock on the hot product's row: a write of that row's
header (its xmax), logged in the WAL, and a MultiXact as soon as two batches (two API nodes)
overlap. Products are never deleted, and the reservation path writes only product ids the gate
loaded from PostgreSQL, so the keys guarded nothing on that path; a trigger now refuses
deleting (or truncating) products, which was the one way the keys could be broken. The index on
reservations.customer_id served no query and cost a random B-tree insert per reservation.
See docs/decisions/0007-lean-reservation-writes.md.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PRODUCT_KEYS = (
    ("reservation_lines", "fk_reservation_lines_product_id_products"),
    ("stock_ledger", "fk_stock_ledger_product_id_products"),
)


def upgrade() -> None:
    for table, constraint in PRODUCT_KEYS:
        op.drop_constraint(constraint, table, type_="foreignkey")
    op.drop_index("ix_reservations_customer_id", table_name="reservations")
    op.execute(
        """
        CREATE FUNCTION products_are_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'products are never deleted: reservations and the ledger name them'
            USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER products_never_deleted BEFORE DELETE ON products "
        "FOR EACH ROW EXECUTE FUNCTION products_are_never_deleted()"
    )
    op.execute(
        "CREATE TRIGGER products_never_truncated BEFORE TRUNCATE ON products "
        "FOR EACH STATEMENT EXECUTE FUNCTION products_are_never_deleted()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER products_never_truncated ON products")
    op.execute("DROP TRIGGER products_never_deleted ON products")
    op.execute("DROP FUNCTION products_are_never_deleted()")
    op.create_index("ix_reservations_customer_id", "reservations", ["customer_id"])
    for table, constraint in PRODUCT_KEYS:
        op.create_foreign_key(constraint, table, "products", ["product_id"], ["id"])
