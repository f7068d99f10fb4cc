"""ledger entries move units (never negative) between places; a `ref` for outside keys

Revision ID: 0004
Revises: 0003

Until now `stock_ledger.quantity` was the signed change of *available* units (a hold -n, a
release +n). From here an entry moves `quantity` units between the places a unit can be
(domain/ledger.py MOVES), which also describes movements that leave available unchanged,
such as a sale (held -> sold). Existing rows keep their kinds; only the sign of `held` rows
changes (a product added with no stock keeps its 0 entry). `ref` carries the movement's
outside key (a restock key, a Stripe refund id), unique per product and kind, so replaying
the same movement adds nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE stock_ledger SET quantity = -quantity WHERE quantity < 0")
    op.create_check_constraint(
        op.f("ck_stock_ledger_quantity_not_negative"), "stock_ledger", "quantity >= 0"
    )
    op.add_column("stock_ledger", sa.Column("ref", sa.Text(), nullable=True))
    op.create_index(
        "uq_stock_ledger_ref",
        "stock_ledger",
        ["product_id", "kind", "ref"],
        unique=True,
        postgresql_where=sa.text("ref IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_stock_ledger_ref", table_name="stock_ledger")
    op.drop_column("stock_ledger", "ref")
    op.drop_constraint(op.f("ck_stock_ledger_quantity_not_negative"), "stock_ledger", type_="check")
    op.execute("UPDATE stock_ledger SET quantity = -quantity WHERE kind = 'held'")
